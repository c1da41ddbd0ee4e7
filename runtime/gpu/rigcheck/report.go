// Package rigcheck is the first-run check of a real GPU rig: a test suite built with the
// gpu build tag (`make gpu-check`) that runs the node's GPU paths against the real
// driver, toolkit and engine, and the report it prints for the rig owner to send back.
// Without the tag only the report format builds; `make test` compiles the suite so that
// it cannot rot.
package rigcheck

import (
	"fmt"
	"io"
	"strings"
)

// Report is the rig check's output: sections of key/value lines, each problem marked,
// and a last line with the verdict. Its format is documented in the README ("First run
// on a GPU rig").
type Report struct {
	sections []*Section
}

// Section is one part of the check: NVML, sampling, health, metrics, toolkit, harness.
type Section struct {
	name     string
	lines    []string
	problems int
}

// Section starts a section of the report.
func (r *Report) Section(name string) *Section {
	s := &Section{name: name}
	r.sections = append(r.sections, s)
	return s
}

// Line adds "key: value" to the section.
func (s *Section) Line(key, format string, args ...any) {
	s.lines = append(s.lines, fmt.Sprintf("  %-28s %s", key+":", oneLine(fmt.Sprintf(format, args...))))
}

// Problem adds a line marked PROBLEM, counted in the verdict.
func (s *Section) Problem(key, format string, args ...any) {
	s.problems++
	s.lines = append(s.lines, fmt.Sprintf("  %-28s PROBLEM: %s", key+":", oneLine(fmt.Sprintf(format, args...))))
}

// Problems counts the problems of every section.
func (r *Report) Problems() int {
	n := 0
	for _, s := range r.sections {
		n += s.problems
	}
	return n
}

// WriteTo writes the report.
func (r *Report) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	b.WriteString("== gpunode rig check (report format 1)\n")
	for _, s := range r.sections {
		fmt.Fprintf(&b, "\n[%s]\n", s.name)
		for _, l := range s.lines {
			b.WriteString(l + "\n")
		}
	}
	verdict := "PASS"
	if n := r.Problems(); n > 0 {
		verdict = fmt.Sprintf("FAIL (%d problems)", n)
	}
	fmt.Fprintf(&b, "\nRESULT: %s\n", verdict)
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

// oneLine keeps a value on its line: the report is read line by line.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return s
}
