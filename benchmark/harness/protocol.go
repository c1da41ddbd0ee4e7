package harness

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"

	"github.com/gpunode/gpunode/benchmark"
)

// Protocol is the harness protocol version this parser speaks (PROTOCOL.md).
const Protocol = 1

// MaxLine bounds one line of harness output.
const MaxLine = 64 << 10

// maxText bounds the free-text fields the harness reports, which end up in reports.
const maxText = 256

// ErrProtocol marks harness output that breaks the protocol: the run's numbers are not
// used, whatever else it printed.
var ErrProtocol = errors.New("harness protocol violation")

// Device is one device the harness measures.
type Device struct {
	// ID labels its results: "cpu", "gpu0", "gpu1", …
	ID       string `json:"id"`
	Index    int    `json:"index"`
	Name     string `json:"name"`
	UUID     string `json:"uuid"`
	MemoryMB int64  `json:"memory_mb"`
}

// Hello is the harness's first line: who it is and what it runs on.
type Hello struct {
	Type     string   `json:"type"`
	Protocol int      `json:"protocol"`
	Harness  string   `json:"harness"`
	Torch    string   `json:"torch"`
	Python   string   `json:"python"`
	Device   string   `json:"device"`
	CPU      string   `json:"cpu"`
	CPUCount int      `json:"cpu_count"`
	CUDA     string   `json:"cuda"`
	CuDNN    string   `json:"cudnn"`
	NCCL     string   `json:"nccl"`
	Driver   string   `json:"driver"`
	Devices  []Device `json:"devices"`
}

// maxBatch bounds the launches per timed repeat (harness.py's MAX_BATCH).
const maxBatch = 1 << 16

type resultLine struct {
	Type    string `json:"type"`
	Index   *int   `json:"index"`
	Device  string `json:"device"`
	Warmup  int    `json:"warmup"`
	Repeats int    `json:"repeats"`
	// Batch is how many launches each timed repeat ran; its times are per launch.
	Batch    int     `json:"batch"`
	MinMS    float64 `json:"min_ms"`
	MedianMS float64 `json:"median_ms"`
	MaxMS    float64 `json:"max_ms"`
}

type skippedLine struct {
	Type   string `json:"type"`
	Index  *int   `json:"index"`
	Device string `json:"device"`
	Reason string `json:"reason"`
}

type doneLine struct {
	Type    string `json:"type"`
	Results *int   `json:"results"`
}

type errorLine struct {
	Type  string `json:"type"`
	Error string `json:"error"`
}

var deviceID = regexp.MustCompile(`^(cpu|gpu[0-9]{1,3})$`)

// Parser checks harness output line by line against the plan it was given.
type Parser struct {
	plan    benchmark.Plan
	hello   *Hello
	done    bool
	line    int
	seen    map[string]bool
	results []benchmark.Result
}

// NewParser returns a parser for the output of a run of plan.
func NewParser(plan benchmark.Plan) *Parser {
	return &Parser{plan: plan, seen: map[string]bool{}}
}

func (p *Parser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: line %d: %s", ErrProtocol, p.line, fmt.Sprintf(format, args...))
}

func strict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the object")
	}
	return nil
}

// Line parses one line. It returns the result the line carries, if any.
func (p *Parser) Line(b []byte) (*benchmark.Result, error) {
	p.line++
	b = bytes.TrimRight(b, "\r")
	if p.done {
		return nil, p.errorf("output after done")
	}
	var env struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, p.errorf("not a JSON object: %v: %.80q", err, b)
	}
	if env.Type != "hello" && env.Type != "error" && p.hello == nil {
		return nil, p.errorf("%q before hello", env.Type)
	}
	switch env.Type {
	case "hello":
		if p.hello != nil {
			return nil, p.errorf("second hello")
		}
		var h Hello
		if err := strict(b, &h); err != nil {
			return nil, p.errorf("hello: %v", err)
		}
		for _, f := range []string{h.Harness, h.Torch, h.Python, h.Device, h.CPU, h.CUDA, h.CuDNN, h.NCCL, h.Driver} {
			if len(f) > maxText {
				return nil, p.errorf("hello: a field is longer than %d bytes", maxText)
			}
		}
		if h.Device != "cpu" && h.Device != "cuda" {
			return nil, p.errorf("hello: device %q, want cpu or cuda", h.Device)
		}
		if h.Protocol != Protocol {
			return nil, p.errorf("harness speaks protocol %d, this node %d: use a harness image that matches the node's version", h.Protocol, Protocol)
		}
		if len(h.Devices) == 0 || len(h.Devices) > 64 {
			return nil, p.errorf("hello lists %d devices, want 1 to 64", len(h.Devices))
		}
		ids := map[string]bool{}
		for _, d := range h.Devices {
			if len(d.Name) > maxText || len(d.UUID) > maxText {
				return nil, p.errorf("hello: device %q: name or uuid longer than %d bytes", d.ID, maxText)
			}
			if !deviceID.MatchString(d.ID) || ids[d.ID] {
				return nil, p.errorf("hello: bad or repeated device id %q", d.ID)
			}
			ids[d.ID] = true
		}
		p.hello = &h
		return nil, nil
	case "error":
		var e errorLine
		if err := strict(b, &e); err != nil {
			return nil, p.errorf("error: %v", err)
		}
		return nil, fmt.Errorf("harness failed: %s", e.Error)
	case "result", "skipped":
		var r benchmark.Result
		var idx *int
		if env.Type == "result" {
			var l resultLine
			if err := strict(b, &l); err != nil {
				return nil, p.errorf("result: %v", err)
			}
			if l.Batch < 1 || l.Batch > maxBatch {
				return nil, p.errorf("result: batch %d out of range 1..%d", l.Batch, maxBatch)
			}
			idx = l.Index
			r = benchmark.Result{Device: l.Device, Warmup: l.Warmup, Repeats: l.Repeats, MinMS: l.MinMS, MedianMS: l.MedianMS, MaxMS: l.MaxMS}
		} else {
			var l skippedLine
			if err := strict(b, &l); err != nil {
				return nil, p.errorf("skipped: %v", err)
			}
			if l.Reason == "" || len(l.Reason) > 4*maxText {
				return nil, p.errorf("skipped without a reason, or one longer than %d bytes", 4*maxText)
			}
			idx = l.Index
			r = benchmark.Result{Device: l.Device, Skipped: l.Reason}
		}
		if idx == nil || *idx < 0 || *idx >= len(p.plan.Problems) {
			return nil, p.errorf("%s: index missing or outside the plan's %d problems", env.Type, len(p.plan.Problems))
		}
		r.Problem = p.plan.Problems[*idx]
		if err := p.checkDevice(r); err != nil {
			return nil, err
		}
		key := strconv.Itoa(*idx) + "/" + r.Device
		if p.seen[key] {
			return nil, p.errorf("second result for problem %d on %s", *idx, r.Device)
		}
		if err := r.Check(); err != nil {
			return nil, p.errorf("%v", err)
		}
		if r.Skipped == "" && (r.Warmup != p.plan.Timing.Warmup || r.Repeats < p.plan.Timing.MinRepeats || r.Repeats > p.plan.Timing.MaxRepeats) {
			return nil, p.errorf("problem %d: %d warm-up and %d timed runs, the plan asked for %d and %d to %d",
				*idx, r.Warmup, r.Repeats, p.plan.Timing.Warmup, p.plan.Timing.MinRepeats, p.plan.Timing.MaxRepeats)
		}
		p.seen[key] = true
		p.results = append(p.results, r)
		return &r, nil
	case "done":
		var d doneLine
		if err := strict(b, &d); err != nil {
			return nil, p.errorf("done: %v", err)
		}
		if d.Results == nil || *d.Results != len(p.results) {
			return nil, p.errorf("done counts %v results, %d were sent", d.Results, len(p.results))
		}
		p.done = true
		return nil, nil
	}
	return nil, p.errorf("unknown line type %q", env.Type)
}

func (p *Parser) checkDevice(r benchmark.Result) error {
	if r.Problem.Class == benchmark.ClassAllReduce {
		if r.Device != "rig" {
			return p.errorf("all-reduce result on %q, want \"rig\"", r.Device)
		}
		return nil
	}
	for _, d := range p.hello.Devices {
		if d.ID == r.Device {
			return nil
		}
	}
	return p.errorf("result on device %q, which hello did not list", r.Device)
}

// Finish checks that the output was complete: a done line, and a result (or skip) for
// every problem on every device.
func (p *Parser) Finish() (*Hello, []benchmark.Result, error) {
	if p.hello == nil {
		return nil, nil, fmt.Errorf("%w: no hello line (did the harness start?)", ErrProtocol)
	}
	if !p.done {
		return nil, nil, fmt.Errorf("%w: output ended before done, after %d results (harness crashed or was killed?)", ErrProtocol, len(p.results))
	}
	for i, prob := range p.plan.Problems {
		devs := []string{"rig"}
		if prob.Class != benchmark.ClassAllReduce {
			devs = devs[:0]
			for _, d := range p.hello.Devices {
				devs = append(devs, d.ID)
			}
		}
		for _, d := range devs {
			if !p.seen[strconv.Itoa(i)+"/"+d] {
				return nil, nil, fmt.Errorf("%w: no result for problem %d (%s) on %s", ErrProtocol, i, prob.ID(), d)
			}
		}
	}
	return p.hello, p.results, nil
}

// Parse reads a whole harness output, calling progress for each result as it arrives.
func Parse(r io.Reader, plan benchmark.Plan, progress func(benchmark.Result)) (*Hello, []benchmark.Result, error) {
	p := NewParser(plan)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), MaxLine)
	for sc.Scan() {
		res, err := p.Line(sc.Bytes())
		if err != nil {
			return nil, nil, err
		}
		if res != nil && progress != nil {
			progress(*res)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("%w: read output: %v", ErrProtocol, err)
	}
	return p.Finish()
}
