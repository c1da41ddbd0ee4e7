package docker

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/gpunode/gpunode/runtime"
)

// cappedWriter writes up to max bytes, then one truncation notice, then discards. It
// never fails the copy: a chatty job must not stall on its own log.
type cappedWriter struct {
	mu        sync.Mutex
	w         io.Writer
	max       int64
	n         int64
	truncated bool
}

func (c *cappedWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.truncated {
		return len(p), nil
	}
	room := c.max - c.n
	if int64(len(p)) <= room {
		n, err := c.w.Write(p)
		c.n += int64(n)
		return len(p), err
	}
	if room > 0 {
		n, err := c.w.Write(p[:room])
		c.n += int64(n)
		if err != nil {
			return len(p), err
		}
	}
	c.truncated = true
	_, err := fmt.Fprintf(c.w, "\n[gpunode: log truncated at %d bytes]\n", c.max)
	return len(p), err
}

// Logs implements runtime.Runtime. It reads the job's log file; with follow it keeps
// reading until the job has finished and the file is drained, or ctx ends.
func (r *Runtime) Logs(ctx context.Context, jobID string, follow bool) (io.ReadCloser, error) {
	if !runtime.ValidJobID(jobID) {
		return nil, fmt.Errorf("job %q: %w", jobID, runtime.ErrUnknownJob)
	}
	r.mu.Lock()
	j, watched := r.jobs[jobID]
	r.mu.Unlock()
	var path string
	var done <-chan struct{}
	if watched {
		path = j.snapshot().LogFile
		done = j.done
	} else {
		rec, err := r.records.load(jobID)
		if err != nil {
			return nil, err
		}
		path = rec.LogFile
		closed := make(chan struct{})
		close(closed)
		done = closed // not watched here: nothing more will be written by this process
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("job %s: log: %w", jobID, err)
	}
	if !follow {
		return f, nil
	}
	return &followReader{ctx: ctx, f: f, done: done}, nil
}

// followReader is tail -f that ends once the job is done and the file drained.
type followReader struct {
	ctx  context.Context
	f    *os.File
	done <-chan struct{}
}

func (fr *followReader) Read(p []byte) (int, error) {
	for {
		n, err := fr.f.Read(p)
		if n > 0 || (err != nil && err != io.EOF) {
			return n, err
		}
		select {
		case <-fr.done:
			// One more read: the last bytes may have landed after the previous one.
			n, err := fr.f.Read(p)
			if n > 0 {
				return n, nil
			}
			if err == nil {
				err = io.EOF
			}
			return 0, err
		case <-fr.ctx.Done():
			return 0, fr.ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (fr *followReader) Close() error { return fr.f.Close() }
