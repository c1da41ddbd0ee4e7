package job

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// UploadFiles replaces each input given as a local file or folder (relative to dir, the
// manifest's folder) by the CID add returns for it, in order (the job's inputs, then the
// evaluation's), and returns the manifest as it is to be posted, checked by Decode. add
// is given the input's file as the manifest names it and its path on this machine. The
// manifest is changed in place.
func (m *Manifest) UploadFiles(dir string, add func(file, path string) (cid string, err error)) ([]byte, error) {
	var inputs []*Input
	for i := range m.Inputs {
		inputs = append(inputs, &m.Inputs[i])
	}
	for i := range m.Evaluation.Inputs {
		inputs = append(inputs, &m.Evaluation.Inputs[i])
	}
	for i, in := range inputs {
		if in.File == "" {
			continue
		}
		p := in.File
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("inputs[%d].file: %w", i, err)
		}
		cid, err := add(in.File, p)
		if err != nil {
			return nil, fmt.Errorf("add input %s to IPFS: %w", in.File, err)
		}
		in.CID, in.File = cid, ""
	}
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	raw = append(raw, '\n')
	if _, err := Decode(bytes.NewReader(raw)); err != nil {
		return nil, fmt.Errorf("manifest with the uploaded inputs: %w", err)
	}
	return raw, nil
}

// PostedPath is where the manifest to post is kept beside the original at path:
// NAME.posted.json for NAME.json.
func PostedPath(path string) string {
	return strings.TrimSuffix(path, filepath.Ext(path)) + ".posted.json"
}
