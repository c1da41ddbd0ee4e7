package docker

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/errdefs"

	"github.com/gpunode/gpunode/runtime"
)

// A multi-rig job's containers meet on a cluster network: a bridge network of the job's
// own that is internal (no route out of it) and whose bridge has no address on the host
// (inhibit_ipv4), so the only things a member container can reach are the other members
// on the same segment. Not the host's ports, not the engine's gateway, not other
// networks, not the internet. Each rank has a fixed address in the network's subnet, so
// every member knows MASTER_ADDR without asking. The container's ephemeral port range is
// set to the job's collective ports, which is where gloo and NCCL listen.
//
// On one engine the members' runtimes (one per daemon) share the network by name: the
// first creates it, the others check that it is the job's, locked down, and join it. The
// README's "Multi-rig jobs" has the design for rigs on different hosts.

// LabelCluster marks a cluster network with the multi-rig job's ID.
const LabelCluster = "io.gpunode.cluster"

const inhibitIPv4 = "com.docker.network.bridge.inhibit_ipv4"

// ClusterNetworkName is the engine network a multi-rig job's containers share.
func ClusterNetworkName(id string) string { return "gpunode-cluster-" + id }

// clusterHost is rank 0's host number in the cluster subnet; rank r has clusterHost+r.
const clusterHost = 10

// ClusterAddr is the address of a rank's container on its cluster network.
func ClusterAddr(subnet netip.Prefix, rank int) netip.Addr {
	a := subnet.Masked().Addr().As4()
	n := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	n += uint32(clusterHost + rank)
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

// clusterSubnets are the candidate /24s of a job, derived from its ID so that members on
// one engine pick the same one first, within 10.128.0.0/9.
func clusterSubnets(id string) []netip.Prefix {
	h := sha256.Sum256([]byte(id))
	var out []netip.Prefix
	for i := 0; i < 16; i++ {
		b1 := 128 + (int(h[i%32])+i)%128
		b2 := int(h[(i+1)%32])
		out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(b1), byte(b2), 0}), 24))
	}
	return out
}

// clusterNetwork returns the job's cluster network and its subnet, creating it if no
// member has yet. A network of that name that is not locked down the way this runtime
// makes them is refused: a job must not be let out through a network someone else made.
func (r *Runtime) clusterNetwork(ctx context.Context, c runtime.Cluster) (string, netip.Prefix, error) {
	name := ClusterNetworkName(c.ID)
	for attempt := 0; attempt < 3; attempt++ {
		nw, err := r.cli.NetworkInspect(ctx, name, network.InspectOptions{})
		if err == nil {
			subnet, err := checkClusterNetwork(nw, c.ID)
			return name, subnet, err
		}
		if !errdefs.IsNotFound(err) {
			return "", netip.Prefix{}, fmt.Errorf("cluster network %s: %w", name, err)
		}
		for _, subnet := range clusterSubnets(c.ID) {
			internal := true
			_, err = r.cli.NetworkCreate(ctx, name, network.CreateOptions{
				Driver:   "bridge",
				Internal: internal,
				IPAM:     &network.IPAM{Config: []network.IPAMConfig{{Subnet: subnet.String()}}},
				Options:  map[string]string{inhibitIPv4: "true"},
				Labels:   map[string]string{LabelCluster: c.ID, LabelInstance: r.cfg.Instance},
			})
			if err == nil || errdefs.IsConflict(err) || strings.Contains(err.Error(), "already exists") {
				break // made, or made by another member meanwhile: inspect it
			}
			if !strings.Contains(err.Error(), "overlap") {
				return "", netip.Prefix{}, fmt.Errorf("cluster network %s: create: %w", name, err)
			}
			err = nil // that subnet is taken on this host: try the next
		}
		if err != nil {
			return "", netip.Prefix{}, fmt.Errorf("cluster network %s: create: %w", name, err)
		}
	}
	return "", netip.Prefix{}, fmt.Errorf("cluster network %s: neither found nor created", name)
}

// checkClusterNetwork accepts only a network that this code would have made for the job.
func checkClusterNetwork(nw network.Inspect, id string) (netip.Prefix, error) {
	switch {
	case nw.Labels[LabelCluster] != id:
		return netip.Prefix{}, fmt.Errorf("cluster network %s: exists but is not job %s's (label %s=%q)", nw.Name, id, LabelCluster, nw.Labels[LabelCluster])
	case nw.Driver != "bridge" || !nw.Internal || nw.Options[inhibitIPv4] != "true":
		return netip.Prefix{}, fmt.Errorf("cluster network %s: not locked down (driver %s, internal %v, %s=%q): remove it", nw.Name, nw.Driver, nw.Internal, inhibitIPv4, nw.Options[inhibitIPv4])
	case len(nw.IPAM.Config) != 1:
		return netip.Prefix{}, fmt.Errorf("cluster network %s: want one subnet, has %d", nw.Name, len(nw.IPAM.Config))
	}
	p, err := netip.ParsePrefix(nw.IPAM.Config[0].Subnet)
	if err != nil || !p.Addr().Is4() || p.Bits() > 24 {
		return netip.Prefix{}, fmt.Errorf("cluster network %s: subnet %q is not an IPv4 /24 or wider", nw.Name, nw.IPAM.Config[0].Subnet)
	}
	return p, nil
}

// joinCluster puts a container config on the job's cluster network with the rendezvous
// environment, and returns the endpoint settings for ContainerCreate.
func (r *Runtime) joinCluster(ctx context.Context, c runtime.Cluster, cfg *container.Config, hc *container.HostConfig) (*network.NetworkingConfig, error) {
	name, subnet, err := r.clusterNetwork(ctx, c)
	if err != nil {
		return nil, err
	}
	master := ClusterAddr(subnet, 0)
	self := ClusterAddr(subnet, c.NodeRank)
	var env []string
	for _, kv := range cfg.Env {
		k, _, _ := strings.Cut(kv, "=")
		if !runtime.IsRendezvousKey(k) {
			env = append(env, kv)
		}
	}
	env = append(env, c.RendezvousEnv(master.String())...)
	// gloo and NCCL pick the interface whose address they announce: the cluster's.
	env = append(env, "GLOO_SOCKET_IFNAME=eth0", "NCCL_SOCKET_IFNAME=eth0")
	cfg.Env = env
	cfg.NetworkDisabled = false
	cfg.Hostname = "rank" + strconv.Itoa(c.NodeRank)
	hc.NetworkMode = container.NetworkMode(name)
	if hc.Sysctls == nil {
		hc.Sysctls = map[string]string{}
	}
	hc.Sysctls["net.ipv4.ip_local_port_range"] = fmt.Sprintf("%d %d", c.PortBase, c.PortBase+c.PortCount-1)
	return &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
		name: {IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: self.String()}},
	}}, nil
}

// leaveCluster removes the job's cluster network once no member's container is on it;
// while another member's is, the engine refuses and the last one out removes it.
func (r *Runtime) leaveCluster(c *runtime.Cluster) {
	if c == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), 30*time.Second)
	defer cancel()
	name := ClusterNetworkName(c.ID)
	nw, err := r.cli.NetworkInspect(ctx, name, network.InspectOptions{})
	if err != nil || nw.Labels[LabelCluster] != c.ID || len(nw.Containers) > 0 {
		return
	}
	if err := r.cli.NetworkRemove(ctx, name); err != nil && !errdefs.IsNotFound(err) && !errors.Is(err, context.Canceled) {
		r.log.Debug("cluster network kept", "network", name, "err", err)
	}
}
