package runtime

import (
	"errors"
	"fmt"
	"strconv"
)

// Cluster places a job's container in a job that spans several rigs (a multi-node
// PyTorch job). Every member rig starts one container with the same Cluster but its own
// NodeRank; the containers get the standard rendezvous environment that torchrun and
// torch.distributed read, and a network on which they reach one another and nothing else.
type Cluster struct {
	// ID names the multi-rig job; the members' containers meet on the network named
	// after it. A job ID: 1-128 of [a-zA-Z0-9_.-].
	ID string `json:"id"`
	// NodeRank is this rig's place, 0 … NNodes-1; rank 0 hosts the rendezvous and
	// writes the checkpoint.
	NodeRank int `json:"node_rank"`
	// NNodes is the number of member rigs.
	NNodes int `json:"nnodes"`
	// NProcPerNode is the processes per rig (GPUs per node; 1 on CPU).
	NProcPerNode int `json:"nproc_per_node"`
	// MasterPort is the rendezvous port on rank 0; 0 = DefaultMasterPort.
	MasterPort int `json:"master_port,omitempty"`
	// PortBase and PortCount are the collective ports (gloo and NCCL connect on them):
	// the container's ephemeral port range is set to exactly them. 0 = the defaults.
	PortBase  int `json:"port_base,omitempty"`
	PortCount int `json:"port_count,omitempty"`
}

// Defaults of a Cluster.
const (
	DefaultMasterPort = 29500
	DefaultPortBase   = 29600
	DefaultPortCount  = 64
	// MaxNodes bounds a multi-rig job.
	MaxNodes = 64
)

// WithDefaults fills a cluster's zero ports.
func (c Cluster) WithDefaults() Cluster {
	if c.MasterPort == 0 {
		c.MasterPort = DefaultMasterPort
	}
	if c.PortBase == 0 {
		c.PortBase = DefaultPortBase
	}
	if c.PortCount == 0 {
		c.PortCount = DefaultPortCount
	}
	return c
}

// Validate reports every problem with the cluster (after WithDefaults).
func (c Cluster) Validate() []error {
	var errs []error
	if !jobIDRe.MatchString(c.ID) {
		errs = append(errs, fmt.Errorf("cluster.id %q: want 1-128 of [a-zA-Z0-9_.-], starting alphanumeric", c.ID))
	}
	if c.NNodes < 1 || c.NNodes > MaxNodes {
		errs = append(errs, fmt.Errorf("cluster.nnodes %d: want 1-%d", c.NNodes, MaxNodes))
	}
	if c.NodeRank < 0 || c.NodeRank >= max(c.NNodes, 1) {
		errs = append(errs, fmt.Errorf("cluster.node_rank %d: want 0-%d", c.NodeRank, max(c.NNodes, 1)-1))
	}
	if c.NProcPerNode < 1 || c.NProcPerNode > 64 {
		errs = append(errs, fmt.Errorf("cluster.nproc_per_node %d: want 1-64", c.NProcPerNode))
	}
	if c.MasterPort < 1024 || c.MasterPort > 65535 {
		errs = append(errs, fmt.Errorf("cluster.master_port %d: want 1024-65535", c.MasterPort))
	}
	if c.PortCount < 1 || c.PortCount > 1024 {
		errs = append(errs, fmt.Errorf("cluster.port_count %d: want 1-1024", c.PortCount))
	}
	if c.PortBase < 1024 || c.PortBase+c.PortCount-1 > 65535 {
		errs = append(errs, fmt.Errorf("cluster ports %d-%d: want within 1024-65535", c.PortBase, c.PortBase+c.PortCount-1))
	}
	if c.MasterPort >= c.PortBase && c.MasterPort < c.PortBase+c.PortCount {
		errs = append(errs, errors.New("cluster.master_port: must be outside the collective port range"))
	}
	return errs
}

// RendezvousEnv is the environment torchrun and torch.distributed's env:// rendezvous
// read, for this rig's container. RANK is the node's first global rank (the one of a
// single process per node); LOCAL_RANK is 0.
func (c Cluster) RendezvousEnv(masterAddr string) []string {
	return []string{
		"MASTER_ADDR=" + masterAddr,
		"MASTER_PORT=" + strconv.Itoa(c.MasterPort),
		"WORLD_SIZE=" + strconv.Itoa(c.NNodes*c.NProcPerNode),
		"RANK=" + strconv.Itoa(c.NodeRank*c.NProcPerNode),
		"LOCAL_RANK=0",
		"NODE_RANK=" + strconv.Itoa(c.NodeRank),
		"NNODES=" + strconv.Itoa(c.NNodes),
		"NPROC_PER_NODE=" + strconv.Itoa(c.NProcPerNode),
	}
}

// rendezvousKeys are set by the runtime for a cluster job; a job's own values are dropped.
var rendezvousKeys = map[string]bool{
	"MASTER_ADDR": true, "MASTER_PORT": true, "WORLD_SIZE": true, "RANK": true, "LOCAL_RANK": true,
	"NODE_RANK": true, "NNODES": true, "NPROC_PER_NODE": true,
	"GLOO_SOCKET_IFNAME": true, "NCCL_SOCKET_IFNAME": true,
}

// IsRendezvousKey tells whether the runtime owns the variable in a cluster job.
func IsRendezvousKey(name string) bool { return rendezvousKeys[name] }
