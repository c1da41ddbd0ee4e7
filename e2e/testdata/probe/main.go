// Command probe is a hostile training job for the end-to-end tests: from inside its
// container it plants links to host files in its output directory (the private dataset,
// /etc/passwd), tries to reach the network, and writes what it saw to report.json. The
// node must publish the report and none of the linked files' contents.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"
)

type report struct {
	Interfaces []string          `json:"interfaces"`
	Dial       map[string]string `json:"dial"`
	Links      map[string]string `json:"links"`
	DatasetLen int64             `json:"dataset_bytes"`
}

func main() {
	data := flag.String("data", "/data/digits.csv.gz", "a file of the private dataset")
	out := flag.String("out", "/out", "output directory")
	dial := flag.String("dial", "1.1.1.1:53", "an address to try to reach")
	flag.Parse()
	r := report{Dial: map[string]string{}, Links: map[string]string{}}
	if fi, err := os.Stat(*data); err == nil {
		r.DatasetLen = fi.Size()
	}
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		r.Interfaces = append(r.Interfaces, i.Name)
	}
	for _, a := range []string{*dial, "registry-1.docker.io:443"} {
		c, err := net.DialTimeout("tcp", a, 3*time.Second)
		if err == nil {
			c.Close()
			r.Dial[a] = "connected"
		} else {
			r.Dial[a] = err.Error()
		}
	}
	try := func(name string, err error) {
		if err != nil {
			r.Links[name] = err.Error()
		} else {
			r.Links[name] = "made"
		}
	}
	try("passwd-symlink", os.Symlink("/etc/passwd", filepath.Join(*out, "passwd")))
	try("dataset-symlink", os.Symlink(*data, filepath.Join(*out, "dataset.csv.gz")))
	try("data-dir-symlink", os.Symlink(filepath.Dir(*data), filepath.Join(*out, "data")))
	try("dataset-hardlink", os.Link(*data, filepath.Join(*out, "dataset-hard.csv.gz")))
	// A hard link between the job's own files: the host cannot tell it from a link to a
	// host file, so neither name may be published.
	own := filepath.Join(*out, "own.txt")
	if err := os.WriteFile(own, []byte("the job's own file\n"), 0o644); err == nil {
		try("own-hardlink", os.Link(own, filepath.Join(*out, "own-link.txt")))
	}
	b, _ := json.MarshalIndent(r, "", "  ")
	if err := os.WriteFile(filepath.Join(*out, "report.json"), b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(1)
	}
	fmt.Printf("%s\n", b)
}
