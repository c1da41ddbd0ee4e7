package harness

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"
)

// DefaultBase is the harness image's default base. A tag, not a digest: the project
// cannot check a digest from where it is built; operators pin theirs with base_image.
const DefaultBase = "pytorch/pytorch:2.7.1-cuda12.8-cudnn9-runtime"

// localRepo names the images the node builds itself. The .invalid top-level domain is
// reserved: no registry answers for it, so a missing image is never pulled by its name
// from whoever registered it.
const localRepo = "gpunode.invalid/harness"

// ImageTag is the tag of the harness image built from the embedded Dockerfile and
// script on base: it changes whenever any of the three does.
func ImageTag(base string) string {
	h := sha256.New()
	for _, b := range [][]byte{Dockerfile, Script, []byte(base)} {
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	return localRepo + ":" + hex.EncodeToString(h.Sum(nil))[:16]
}

// IsLocal tells whether image is one the node builds itself (ImageTag).
func IsLocal(image string) bool { return strings.HasPrefix(image, localRepo+":") }

// BuildContext is the build context of the harness image: the embedded Dockerfile and
// harness.py, as a tar stream.
func BuildContext() io.Reader {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		data []byte
	}{{"Dockerfile", Dockerfile}, {"harness.py", Script}} {
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), ModTime: time.Unix(0, 0)})
		tw.Write(f.data)
	}
	tw.Close()
	return &buf
}

// Builder builds an image from a build context; the node's container runtime is one.
type Builder interface {
	BuildImage(ctx context.Context, tag string, buildContext io.Reader, args map[string]string) (string, error)
}
