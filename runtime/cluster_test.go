package runtime

import (
	"slices"
	"strings"
	"testing"
)

func TestClusterValidate(t *testing.T) {
	good := Cluster{ID: "42", NodeRank: 1, NNodes: 2, NProcPerNode: 1}.WithDefaults()
	for _, tc := range []struct {
		name string
		edit func(*Cluster)
		want string
	}{
		{"good", func(*Cluster) {}, ""},
		{"bad id", func(c *Cluster) { c.ID = "../x" }, "cluster.id"},
		{"rank past the nodes", func(c *Cluster) { c.NodeRank = 2 }, "cluster.node_rank 2"},
		{"negative rank", func(c *Cluster) { c.NodeRank = -1 }, "cluster.node_rank -1"},
		{"no nodes", func(c *Cluster) { c.NNodes = 0; c.NodeRank = 0 }, "cluster.nnodes 0"},
		{"too many nodes", func(c *Cluster) { c.NNodes = MaxNodes + 1 }, "cluster.nnodes"},
		{"no processes", func(c *Cluster) { c.NProcPerNode = 0 }, "cluster.nproc_per_node"},
		{"privileged master port", func(c *Cluster) { c.MasterPort = 22 }, "cluster.master_port 22"},
		{"range past 65535", func(c *Cluster) { c.PortBase = 65500 }, "cluster ports"},
		{"master inside range", func(c *Cluster) { c.MasterPort = c.PortBase + 1 }, "outside the collective port range"},
		{"huge range", func(c *Cluster) { c.PortCount = 5000 }, "cluster.port_count"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.edit(&c)
			errs := c.Validate()
			if tc.want == "" {
				if len(errs) > 0 {
					t.Fatal(errs)
				}
				return
			}
			for _, e := range errs {
				if strings.Contains(e.Error(), tc.want) {
					return
				}
			}
			t.Fatalf("want %q among %v", tc.want, errs)
		})
	}
	// A spec with a cluster is checked, and may not ask for the bridge besides.
	s := Spec{JobID: "42", Image: "x@sha256:" + strings.Repeat("a", 64), Command: []string{"x"}, OutputDir: "/o",
		Network: NetworkBridge, Cluster: &Cluster{ID: "42", NodeRank: 5, NNodes: 2, NProcPerNode: 1}}
	var msgs []string
	for _, e := range s.Validate() {
		msgs = append(msgs, e.Error())
	}
	joined := strings.Join(msgs, "\n")
	if !strings.Contains(joined, "cluster network only") || !strings.Contains(joined, "cluster.node_rank 5") {
		t.Fatalf("spec errors %v", msgs)
	}
}

func TestRendezvousEnv(t *testing.T) {
	c := Cluster{ID: "7", NodeRank: 1, NNodes: 3, NProcPerNode: 4}.WithDefaults()
	got := c.RendezvousEnv("10.128.0.10")
	want := []string{"MASTER_ADDR=10.128.0.10", "MASTER_PORT=29500", "WORLD_SIZE=12", "RANK=4", "LOCAL_RANK=0",
		"NODE_RANK=1", "NNODES=3", "NPROC_PER_NODE=4"}
	if !slices.Equal(got, want) {
		t.Fatalf("env %v, want %v", got, want)
	}
	for _, kv := range got {
		k, _, _ := strings.Cut(kv, "=")
		if !IsRendezvousKey(k) {
			t.Errorf("%s is set by the runtime but a job's own value would not be dropped", k)
		}
	}
}
