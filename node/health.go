package node

import (
	"sort"
	"sync"
	"time"

	"github.com/gpunode/gpunode/node/api"
)

// checks holds the state of the node's prerequisites (the container engine, the chain,
// the GPUs' runtime), each with what to do when it fails. A failing prerequisite does not
// stop the node: it says what is missing, in status and once in the log, and keeps trying.
type checks struct {
	mu sync.Mutex
	m  map[string]api.Check
}

// set records a check's result and reports whether it changed.
func (c *checks) set(name string, err error) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]api.Check{}
	}
	next := api.Check{Name: name, OK: err == nil, Since: time.Now().UTC()}
	if err != nil {
		next.Message = err.Error()
	}
	prev, seen := c.m[name]
	if seen && prev.OK == next.OK && prev.Message == next.Message {
		return false
	}
	c.m[name] = next
	return true
}

func (c *checks) list() []api.Check {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]api.Check, 0, len(c.m))
	for _, v := range c.m {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
