package docker

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gpunode/gpunode/runtime"
)

// Job states in a record. A record is written before the side effect it announces:
// "preparing" before anything is pulled or created, the container ID as soon as the
// container exists, "finished" with the result before the container is removed.
const (
	statePreparing = "preparing"
	stateCreated   = "created"
	stateRunning   = "running"
	stateFinished  = "finished"
)

const recordVersion = 1

// record is the persistent state of one job, one JSON file per job in StateDir.
type record struct {
	Version     int          `json:"version"`
	Spec        runtime.Spec `json:"spec"`
	State       string       `json:"state"`
	ContainerID string       `json:"container_id,omitempty"`
	// ContainerName is the name the job's container is created under, chosen before it
	// exists. Its random suffix keeps it from colliding with a container left by
	// another chain, install or data dir that reuses the job ID, and keeps re-attach
	// from mistaking such a container for the job's own.
	ContainerName string `json:"container_name,omitempty"`
	ImageID       string `json:"image_id,omitempty"`
	// OutputRaw is the folder the container writes (see prepareOutput); OutputImage
	// and OutputMounted say whether it is a loop-mounted filesystem of the output cap.
	OutputRaw     string `json:"output_raw,omitempty"`
	OutputImage   string `json:"output_image,omitempty"`
	OutputMounted bool   `json:"output_mounted,omitempty"`
	// OutputFull: the job filled its output cap and was stopped.
	OutputFull bool            `json:"output_full,omitempty"`
	LogFile    string          `json:"log_file"`
	Cancelled  bool            `json:"cancelled,omitempty"`
	TimedOut   bool            `json:"timed_out,omitempty"`
	CreatedAt  time.Time       `json:"created_at"`
	Result     *runtime.Result `json:"result,omitempty"`
}

type recordStore struct{ dir string }

func (s recordStore) path(jobID string) string {
	return filepath.Join(s.dir, "job-"+jobID+".json")
}

// create writes a new record, failing with runtime.ErrJobExists if the job has one:
// O_EXCL makes this the single point where a job ID is claimed, across processes.
func (s recordStore) create(rec *record) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.OpenFile(s.path(rec.Spec.JobID), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("job %s: %w", rec.Spec.JobID, runtime.ErrJobExists)
	}
	if err != nil {
		return fmt.Errorf("job %s: record: %w", rec.Spec.JobID, err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(s.dir)
	}
	if err != nil {
		return fmt.Errorf("job %s: record: %w", rec.Spec.JobID, err)
	}
	return nil
}

// save replaces a record atomically (write, fsync, rename, fsync the directory).
func (s recordStore) save(rec *record) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(s.path(rec.Spec.JobID), b); err != nil {
		return fmt.Errorf("job %s: record: %w", rec.Spec.JobID, err)
	}
	return nil
}

func (s recordStore) load(jobID string) (*record, error) {
	b, err := os.ReadFile(s.path(jobID))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("job %s: %w", jobID, runtime.ErrUnknownJob)
	}
	if err != nil {
		return nil, fmt.Errorf("job %s: record: %w", jobID, err)
	}
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("job %s: record %s: %w", jobID, s.path(jobID), err)
	}
	if rec.Version != recordVersion {
		return nil, fmt.Errorf("job %s: record version %d, want %d", jobID, rec.Version, recordVersion)
	}
	return &rec, nil
}

// list returns the job IDs that have records.
func (s recordStore) list() ([]string, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("state dir %s: %w", s.dir, err)
	}
	var ids []string
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, "job-") && strings.HasSuffix(n, ".json") {
			ids = append(ids, strings.TrimSuffix(strings.TrimPrefix(n, "job-"), ".json"))
		}
	}
	return ids, nil
}

func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Forget drops a finished job's record and log file: a workload the node restarts over
// and over (the idle workload) would otherwise leave one of each per run. A job that
// has not finished is refused; an unknown one is already forgotten.
func (r *Runtime) Forget(jobID string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if j, ok := r.jobs[jobID]; ok {
		if rec := j.snapshot(); rec.State != stateFinished {
			return fmt.Errorf("job %s: not finished; stop it and wait for its result first", jobID)
		}
	}
	rec, err := r.records.load(jobID)
	if errors.Is(err, runtime.ErrUnknownJob) {
		delete(r.jobs, jobID)
		return nil
	}
	if err != nil {
		return err
	}
	if rec.State != stateFinished {
		return fmt.Errorf("job %s: not finished; stop it and wait for its result first", jobID)
	}
	if rec.LogFile != "" {
		if err := os.Remove(rec.LogFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("job %s: remove log: %w", jobID, err)
		}
	}
	if err := os.Remove(r.records.path(jobID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("job %s: remove record: %w", jobID, err)
	}
	delete(r.jobs, jobID)
	return syncDir(r.records.dir)
}
