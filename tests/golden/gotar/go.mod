module kitopsflows.test/gotar

go 1.19
