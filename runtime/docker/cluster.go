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
	"github.com/docker/docker/api/types/filters"
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

// clusterNetwork returns the ID of the job's cluster network and its subnet, creating it
// if no member has yet. Members on one engine may create it at once, and the engine's
// duplicate-name check is not atomic; its address allocation is. So every member tries
// the job's candidate subnets in the same order and moves past one only when another
// network (not the job's) holds it: of two members racing, one creates the network and
// the other's create fails on the subnet, then finds the network. Should a duplicate
// appear anyway, the earliest created wins and a member whose own lost removes it. A
// network of that name that is not locked down the way this runtime makes them is
// refused: a job must not be let out through a network someone else made.
func (r *Runtime) clusterNetwork(ctx context.Context, c runtime.Cluster) (string, netip.Prefix, error) {
	name := ClusterNetworkName(c.ID)
	var mine string
	use := func(nw network.Inspect) (string, netip.Prefix, error) {
		if mine != "" && mine != nw.ID {
			if err := r.cli.NetworkRemove(ctx, mine); err != nil && !errdefs.IsNotFound(err) {
				r.log.Warn("duplicate cluster network not removed", "network", name, "id", shortID(mine), "err", err)
			}
		}
		p, err := checkClusterNetwork(nw, c.ID)
		return nw.ID, p, err
	}
	for _, subnet := range clusterSubnets(c.ID) {
		nw, found, err := r.findClusterNetwork(ctx, name)
		if err != nil {
			return "", netip.Prefix{}, err
		}
		if found {
			return use(nw)
		}
		resp, err := r.cli.NetworkCreate(ctx, name, network.CreateOptions{
			Driver:   "bridge",
			Internal: true,
			IPAM:     &network.IPAM{Config: []network.IPAMConfig{{Subnet: subnet.String()}}},
			Options:  map[string]string{inhibitIPv4: "true"},
			Labels:   map[string]string{LabelCluster: c.ID, LabelInstance: r.cfg.Instance},
		})
		if err == nil {
			mine = resp.ID
			if nw, found, err := r.findClusterNetwork(ctx, name); err == nil && found {
				return use(nw)
			}
			return "", netip.Prefix{}, fmt.Errorf("cluster network %s: created, then not found", name)
		}
		if !strings.Contains(err.Error(), "overlap") && !errdefs.IsConflict(err) && !strings.Contains(err.Error(), "already exists") {
			return "", netip.Prefix{}, fmt.Errorf("cluster network %s: create: %w", name, err)
		}
		// The subnet is taken: by the job's network (another member's, perhaps not
		// listed yet), or by another network, and then the next candidate is tried.
		deadline := time.Now().Add(5 * time.Second)
		for {
			nw, found, err := r.findClusterNetwork(ctx, name)
			if err != nil {
				return "", netip.Prefix{}, err
			}
			if found {
				return use(nw)
			}
			holder, err := r.subnetHolder(ctx, subnet)
			if err != nil {
				return "", netip.Prefix{}, err
			}
			if holder != "" && holder != name || time.Now().After(deadline) {
				break // another network's: try the next subnet
			}
			select {
			case <-ctx.Done():
				return "", netip.Prefix{}, ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return "", netip.Prefix{}, fmt.Errorf("cluster network %s: neither found nor created (every candidate subnet taken)", name)
}

// subnetHolder names the network that holds a subnet, "" when none is listed.
func (r *Runtime) subnetHolder(ctx context.Context, subnet netip.Prefix) (string, error) {
	list, err := r.cli.NetworkList(ctx, network.ListOptions{})
	if err != nil {
		return "", fmt.Errorf("list networks: %w", err)
	}
	for _, nw := range list {
		for _, c := range nw.IPAM.Config {
			if p, err := netip.ParsePrefix(c.Subnet); err == nil && p.Overlaps(subnet) {
				return nw.Name, nil
			}
		}
	}
	return "", nil
}

// findClusterNetwork returns the network of that exact name created first, if any.
func (r *Runtime) findClusterNetwork(ctx context.Context, name string) (network.Inspect, bool, error) {
	list, err := r.cli.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("name", name))})
	if err != nil {
		return network.Inspect{}, false, fmt.Errorf("cluster network %s: %w", name, err)
	}
	var best network.Inspect
	found := false
	for _, nw := range list {
		if nw.Name != name { // the filter matches substrings
			continue
		}
		if !found || nw.Created.Before(best.Created) || nw.Created.Equal(best.Created) && nw.ID < best.ID {
			best, found = nw, true
		}
	}
	return best, found, nil
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
	netID, subnet, err := r.clusterNetwork(ctx, c)
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
	hc.NetworkMode = container.NetworkMode(netID)
	if hc.Sysctls == nil {
		hc.Sysctls = map[string]string{}
	}
	hc.Sysctls["net.ipv4.ip_local_port_range"] = fmt.Sprintf("%d %d", c.PortBase, c.PortBase+c.PortCount-1)
	return &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
		netID: {IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: self.String()}},
	}}, nil
}

// leaveCluster removes the job's cluster network once no member's container is on it;
// while another member's is, it stays and the last one out removes it.
func (r *Runtime) leaveCluster(c *runtime.Cluster) {
	if c == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), 30*time.Second)
	defer cancel()
	name := ClusterNetworkName(c.ID)
	list, err := r.cli.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("label", LabelCluster+"="+c.ID))})
	if err != nil {
		return
	}
	for _, nw := range list {
		if nw.Name != name {
			continue
		}
		// The list does not say who is attached: ask for the network itself.
		ins, err := r.cli.NetworkInspect(ctx, nw.ID, network.InspectOptions{})
		if err != nil || len(ins.Containers) > 0 {
			continue
		}
		if err := r.cli.NetworkRemove(ctx, nw.ID); err != nil && !errdefs.IsNotFound(err) && !errors.Is(err, context.Canceled) {
			r.log.Debug("cluster network kept", "network", name, "err", err)
		}
	}
}
