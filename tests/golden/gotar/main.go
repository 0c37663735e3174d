// Command gotar writes reference tars with Go's archive/tar so the Python tests can compare bytes.
//
// It reproduces how kit pack builds its layer headers (see the project's modelkit spec, section 6):
// a header from tar.FileInfoHeader, then the name set to the slash-separated walk path and the
// times, owner and group normalised. Only the Go standard library is used.
//
//	gotar tree DIR OUT                  tar every regular file and directory under DIR (walk order)
//	gotar header NAME SIZE MODE TYPE OUT  only the header block(s) of one entry; TYPE is file or dir
package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

func normalise(h *tar.Header, name string) {
	h.Name = filepath.ToSlash(name)
	h.ModTime = time.Time{}
	h.AccessTime = time.Time{}
	h.ChangeTime = time.Time{}
	h.Uid = 1000
	h.Gid = 0
	h.Uname = ""
	h.Gname = ""
}

func tree(dir, out string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := os.Chdir(dir); err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	err = filepath.Walk(".", func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if p == "." || (!fi.Mode().IsRegular() && !fi.IsDir()) {
			return nil
		}
		h, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		normalise(h, p)
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("header for %s: %w", p, err)
		}
		if fi.IsDir() {
			return nil
		}
		src, err := os.Open(p)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(tw, src)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

func header(name, size, mode, typ, out string) error {
	n, err := strconv.ParseInt(size, 10, 64)
	if err != nil {
		return err
	}
	m, err := strconv.ParseInt(mode, 8, 64)
	if err != nil {
		return err
	}
	h := &tar.Header{Typeflag: tar.TypeReg, Size: n, Mode: m}
	if typ == "dir" {
		h.Typeflag = tar.TypeDir
	}
	normalise(h, name)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	tw.Flush() // reports the missing file data; the header bytes are already in buf
	return os.WriteFile(out, buf.Bytes(), 0o644)
}

func main() {
	var err error
	switch {
	case len(os.Args) == 4 && os.Args[1] == "tree":
		err = tree(os.Args[2], os.Args[3])
	case len(os.Args) == 7 && os.Args[1] == "header":
		err = header(os.Args[2], os.Args[3], os.Args[4], os.Args[5], os.Args[6])
	default:
		err = fmt.Errorf("usage: gotar tree DIR OUT | gotar header NAME SIZE MODE file|dir OUT")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gotar:", err)
		os.Exit(1)
	}
}
