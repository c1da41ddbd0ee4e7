package p2p

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/gpunode/gpunode/node/p2p/capacity"
	"github.com/gpunode/gpunode/version"
)

const (
	// DHTPrefix keeps gpunode's DHT apart from the public IPFS one.
	DHTPrefix = "/gpunode"
	// Topic carries capacity records.
	Topic = "/gpunode/capacity/1"
	// mdnsService is the mDNS service name rigs on one LAN look for.
	mdnsService = "gpunode"
	// maxSkew tolerates clocks this far ahead.
	maxSkew = 2 * time.Minute
)

// Snapshot returns the rig's current capacity; it is called every SnapshotInterval.
type Snapshot func(ctx context.Context) (capacity.Capacity, error)

// Deps are what the network needs from the rest of the node.
type Deps struct {
	// DataDir holds the identity key under p2p/.
	DataDir string
	// EthKey is the node's wallet key; it signs the binding of its address to the
	// peer ID carried in every capacity record. Required.
	EthKey *ecdsa.PrivateKey
	// Snapshot reports the capacity to advertise. Required.
	Snapshot Snapshot
	// Offers decides offers that pass the built-in checks; nil accepts them.
	Offers OfferHandler
	// Log is scoped with component=p2p; nil discards.
	Log *slog.Logger
	// Registerer receives the network's metrics (and libp2p's own); nil keeps them
	// private and turns libp2p's off.
	Registerer prometheus.Registerer
	// OnRecord, if set, is called for every record accepted into the market view
	// (benchmarks and tests watch propagation with it). It must not block.
	OnRecord func(rec *capacity.Record, at time.Time)
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// testPubsubOptions lets tests trace gossipsub; it is given the host's peer ID.
var testPubsubOptions = func(peer.ID) []pubsub.Option { return nil }

// Network is the node's libp2p presence.
type Network struct {
	cancel  context.CancelFunc
	cfg     Config
	deps    Deps
	log     *slog.Logger
	key     crypto.PrivKey
	host    host.Host
	dht     *dht.IpfsDHT
	ps      *pubsub.PubSub
	topic   *pubsub.Topic
	sub     *pubsub.Subscription
	market  *Market
	metrics *metrics
	guard   *guard
	mdns    mdns.Service

	ethAddr, ethSig string
	publishNow      chan struct{}
	syncSlots       chan struct{}
	runCtx          atomic.Pointer[context.Context]

	closeOnce sync.Once
	closeErr  error

	// reach is AutoNAT's verdict (a network.Reachability), see watchReachability.
	reach atomic.Int32

	mu          sync.Mutex
	seq         uint64
	published   *capacity.Capacity
	publishedAt time.Time // of the last publication, whatever prompted it
	reached     int       // topic peers the last publication went out to
	scores      map[peer.ID]float64
}

// Scoring thresholds: a peer below GraylistThreshold has its messages dropped and is
// pruned from the mesh. The n-th invalid record costs invalidWeight·n² (decaying over
// about an hour): one drops a peer below the gossip threshold, two graylist it.
const (
	invalidWeight     = -20
	gossipThreshold   = -10
	publishThreshold  = -40
	graylistThreshold = -70
)

// ScoreParams are the gossipsub peer-scoring parameters for the capacity topic.
func ScoreParams() (*pubsub.PeerScoreParams, *pubsub.PeerScoreThresholds) {
	_, loop4, _ := net.ParseCIDR("127.0.0.0/8")
	_, loop6, _ := net.ParseCIDR("::1/128")
	params := &pubsub.PeerScoreParams{
		Topics: map[string]*pubsub.TopicScoreParams{
			Topic: {
				TopicWeight:                    1,
				TimeInMeshWeight:               0.01,
				TimeInMeshQuantum:              time.Second,
				TimeInMeshCap:                  100,
				FirstMessageDeliveriesWeight:   0.5,
				FirstMessageDeliveriesDecay:    pubsub.ScoreParameterDecay(10 * time.Minute),
				FirstMessageDeliveriesCap:      20,
				InvalidMessageDeliveriesWeight: invalidWeight,
				InvalidMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(time.Hour),
			},
		},
		AppSpecificScore:            func(peer.ID) float64 { return 0 },
		AppSpecificWeight:           1,
		IPColocationFactorWeight:    -5,
		IPColocationFactorThreshold: 8,
		// Rigs of one operator on one LAN, and tests, share an address.
		IPColocationFactorWhitelist: []*net.IPNet{loop4, loop6},
		BehaviourPenaltyWeight:      -10,
		BehaviourPenaltyThreshold:   6,
		BehaviourPenaltyDecay:       pubsub.ScoreParameterDecay(10 * time.Minute),
		DecayInterval:               time.Second,
		DecayToZero:                 0.01,
		RetainScore:                 30 * time.Minute,
	}
	thresholds := &pubsub.PeerScoreThresholds{
		GossipThreshold:             gossipThreshold,
		PublishThreshold:            publishThreshold,
		GraylistThreshold:           graylistThreshold,
		AcceptPXThreshold:           5,
		OpportunisticGraftThreshold: 3,
	}
	return params, thresholds
}

// Gossipsub's queues. Both default to 32, which the publications of a busy network
// overflow on a loaded machine: a message that finds the validation queue full is
// dropped before it is checked, and one that finds a peer's outbound queue full is not
// sent to it (BenchmarkPropagation50 counted thousands of both). They bound memory,
// not work: the validation queue holds at most validateQueue messages of at most
// 4·capacity.MaxSize (8 MiB), an outbound queue references messages already held, and a
// peer sending invalid records is graylisted after two of them whatever the queue
// length (TestGossipFloodGraylisted).
const (
	validateQueue = 256
	outboundQueue = 256
)

// New builds the host, DHT and gossip from cfg. Nothing is published until Run.
func New(ctx context.Context, cfg Config, deps Deps) (_ *Network, err error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if deps.EthKey == nil || deps.Snapshot == nil {
		return nil, errors.New("p2p: Deps.EthKey and Deps.Snapshot are required")
	}
	if deps.DataDir == "" {
		return nil, errors.New("p2p: Deps.DataDir is required (the identity key lives there)")
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	reg := deps.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	// The DHT and gossipsub live until Close, whatever happens to the caller's ctx.
	ctx, cancel := context.WithCancel(ctx)
	n := &Network{
		cancel: cancel,
		cfg:    cfg, deps: deps, log: deps.Log.With("component", "p2p"),
		market: newMarket(time.Duration(cfg.RecordTTL), cfg.MaxRecords), publishNow: make(chan struct{}, 1),
		syncSlots: make(chan struct{}, maxConcurrentSyncs),
		scores:    map[peer.ID]float64{},
	}
	n.guard = newGuard(cfg, deps.Now)
	n.guard.onGraylist = n.graylisted
	n.key, err = LoadIdentity(IdentityPath(deps.DataDir))
	if err != nil {
		cancel()
		return nil, err
	}
	id, _ := peer.IDFromPrivateKey(n.key)
	if n.ethAddr, n.ethSig, err = capacity.Bind(id, deps.EthKey); err != nil {
		cancel()
		return nil, err
	}
	opts, err := n.hostOptions()
	if err != nil {
		cancel()
		return nil, err
	}
	if deps.Registerer != nil {
		opts = append(opts, libp2p.PrometheusRegisterer(deps.Registerer))
	} else {
		opts = append(opts, libp2p.DisableMetrics())
	}
	n.host, err = libp2p.New(opts...)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("p2p: start host: %w", err)
	}
	n.watchReachability(ctx)
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	n.guard.refusedConns = func() { n.metrics.refused.WithLabelValues(refusedGraylisted).Inc() }
	n.metrics, err = newMetrics(reg,
		func() float64 { return float64(len(n.host.Network().Peers())) },
		func() float64 { return float64(n.market.Len(n.now())) },
		func() float64 { return float64(n.guard.count()) })
	if err != nil {
		return nil, fmt.Errorf("p2p: metrics: %w", err)
	}

	bootstrap, _ := addrInfos(cfg.BootstrapPeers)
	mode := map[string]dht.ModeOpt{"auto": dht.ModeAuto, "server": dht.ModeServer, "client": dht.ModeClient}[cfg.DHTMode]
	n.dht, err = dht.New(n.host, dht.Mode(mode), dht.ProtocolPrefix(DHTPrefix),
		dht.BootstrapPeers(bootstrap...))
	if err != nil {
		return nil, fmt.Errorf("p2p: dht: %w", err)
	}

	params, thresholds := ScoreParams()
	n.ps, err = pubsub.NewGossipSub(ctx, n.host, append([]pubsub.Option{
		pubsub.WithPeerScore(params, thresholds),
		pubsub.WithPeerScoreInspect(pubsub.PeerScoreInspectFn(n.setScores), time.Second),
		pubsub.WithMaxMessageSize(4 * capacity.MaxSize),
		pubsub.WithDiscovery(drouting.NewRoutingDiscovery(n.dht)),
		pubsub.WithPeerExchange(true),
		pubsub.WithFloodPublish(true),
		pubsub.WithValidateQueueSize(validateQueue),
		pubsub.WithPeerOutboundQueueSize(outboundQueue),
	}, testPubsubOptions(n.host.ID())...)...)
	if err != nil {
		return nil, fmt.Errorf("p2p: gossipsub: %w", err)
	}
	if err := n.ps.RegisterTopicValidator(Topic, n.validate); err != nil {
		return nil, fmt.Errorf("p2p: gossipsub validator: %w", err)
	}
	if n.topic, err = n.ps.Join(Topic); err != nil {
		return nil, fmt.Errorf("p2p: join %s: %w", Topic, err)
	}
	if n.sub, err = n.topic.Subscribe(); err != nil {
		return nil, fmt.Errorf("p2p: subscribe %s: %w", Topic, err)
	}
	n.host.SetStreamHandler(OfferProtocol, n.handleOffer)
	n.host.SetStreamHandler(SyncProtocol, n.handleSync)
	if cfg.MDNS {
		n.mdns = mdns.NewMdnsService(n.host, mdnsService, mdnsNotifee{n})
	}
	n.log.Info("p2p host started", "peer_id", n.host.ID(), "addrs", n.host.Addrs(), "eth_address", n.ethAddr)
	return n, nil
}

func (n *Network) hostOptions() ([]libp2p.Option, error) {
	cfg := n.cfg
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	protocolLimits(&limits)
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.Scale(cfg.MaxMemoryMiB<<20, cfg.MaxFDs)))
	if err != nil {
		return nil, fmt.Errorf("p2p: resource manager: %w", err)
	}
	cm, err := connmgr.NewConnManager(cfg.ConnLow, cfg.ConnHigh, connmgr.WithGracePeriod(time.Duration(cfg.ConnGrace)))
	if err != nil {
		return nil, fmt.Errorf("p2p: connection manager: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(n.key),
		libp2p.ListenAddrStrings(cfg.ListenAddrs...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionGater(n.guard),
		libp2p.ConnectionManager(cm),
		libp2p.UserAgent("gpunode/" + version.Get()),
	}
	if len(cfg.AnnounceAddrs) > 0 {
		announce := make([]ma.Multiaddr, 0, len(cfg.AnnounceAddrs))
		for _, s := range cfg.AnnounceAddrs {
			announce = append(announce, ma.StringCast(s))
		}
		opts = append(opts, libp2p.AddrsFactory(func([]ma.Multiaddr) []ma.Multiaddr { return announce }))
	}
	if cfg.AutoNAT {
		opts = append(opts, libp2p.EnableNATService())
	}
	if cfg.NATPortMap {
		opts = append(opts, libp2p.NATPortMap())
	}
	if cfg.Relay {
		opts = append(opts, libp2p.EnableRelay())
		if relays, _ := addrInfos(cfg.StaticRelays); len(relays) > 0 {
			opts = append(opts, libp2p.EnableAutoRelayWithStaticRelays(relays))
		}
	} else {
		opts = append(opts, libp2p.DisableRelay())
	}
	if cfg.RelayService {
		opts = append(opts, libp2p.EnableRelayService())
	}
	if cfg.HolePunching {
		opts = append(opts, libp2p.EnableHolePunching())
	}
	return opts, nil
}

func addrInfos(addrs []string) ([]peer.AddrInfo, error) {
	var out []peer.AddrInfo
	for _, s := range addrs {
		ai, err := peer.AddrInfoFromString(s)
		if err != nil {
			return nil, err
		}
		out = append(out, *ai)
	}
	return out, nil
}

// Host is the libp2p host, shared with the embedded IPFS node.
func (n *Network) Host() host.Host { return n.host }

// Routing is the DHT, for content routing by the embedded IPFS node.
func (n *Network) Routing() routing.Routing { return n.dht }

// PubSub is the node's gossipsub router, for other topics on the same host (the pool
// policy topic). Peer scoring covers only the topics in ScoreParams.
func (n *Network) PubSub() *pubsub.PubSub { return n.ps }

// PrivateKey is the node's identity key (benchmark reports are signed with it).
func (n *Network) PrivateKey() crypto.PrivKey { return n.key }

// ID is the node's peer ID.
func (n *Network) ID() peer.ID { return n.host.ID() }

// Market is the node's view of the network's capacity.
func (n *Network) Market() *Market { return n.market }

// Addrs returns the host's full multiaddrs (with /p2p/<id>), to give to other nodes as
// a bootstrap address.
func (n *Network) Addrs() []string {
	var out []string
	for _, a := range n.host.Addrs() {
		out = append(out, a.String()+"/p2p/"+n.host.ID().String())
	}
	return out
}

// Scores returns the gossipsub score of every known peer, refreshed every second.
func (n *Network) Scores() map[peer.ID]float64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[peer.ID]float64, len(n.scores))
	for k, v := range n.scores {
		out[k] = v
	}
	return out
}

func (n *Network) setScores(s map[peer.ID]float64) {
	n.mu.Lock()
	n.scores = s
	n.mu.Unlock()
}

// Refresh publishes the capacity record now rather than at the next tick.
func (n *Network) Refresh() {
	select {
	case n.publishNow <- struct{}{}:
	default:
	}
}

func (n *Network) now() time.Time { return n.deps.Now() }

func (n *Network) ctx() context.Context {
	if p := n.runCtx.Load(); p != nil {
		return *p
	}
	return context.Background()
}

// Run connects to the bootstrap peers, starts discovery, and publishes the capacity
// record when it changes, when a peer joins the topic, and every RepublishInterval,
// until ctx ends. Then it closes the network.
func (n *Network) Run(ctx context.Context) error {
	defer n.Close()
	n.runCtx.Store(&ctx)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { n.bootstrap(ctx); return nil })
	g.Go(func() error { return n.drain(ctx) })
	g.Go(func() error { return n.watchJoins(ctx) })
	g.Go(func() error { return n.publishLoop(ctx) })
	g.Go(func() error { return n.antiEntropy(ctx) })
	if n.mdns != nil {
		if err := n.mdns.Start(); err != nil {
			n.log.Warn("mDNS discovery off", "err", err)
		}
	}
	err := g.Wait()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// Close stops the network. Run calls it on return; call it directly only if Run was
// never started.
func (n *Network) Close() error {
	n.closeOnce.Do(func() { n.closeErr = n.close() })
	return n.closeErr
}

func (n *Network) close() error {
	defer n.cancel()
	var errs []error
	if n.mdns != nil {
		errs = append(errs, n.mdns.Close())
	}
	if n.sub != nil {
		n.sub.Cancel()
	}
	if n.topic != nil {
		n.topic.Close() // fails while subscribed handlers linger; harmless on shutdown
	}
	if n.dht != nil {
		errs = append(errs, n.dht.Close())
	}
	if n.host != nil {
		errs = append(errs, n.host.Close())
	}
	return errors.Join(errs...)
}

// bootstrap dials the bootstrap peers and seeds the DHT, and keeps doing so with
// backoff (1s doubling to 1m) whenever the node has no bootstrap peer connected and
// fewer than ConnLow connections: a rig that starts before its network does, or loses
// it, finds its way back without a restart.
func (n *Network) bootstrap(ctx context.Context) {
	peers, _ := addrInfos(n.cfg.BootstrapPeers)
	backoff := time.Second
	for {
		if n.needBootstrap(peers) {
			if n.dialBootstrap(ctx, peers) {
				if err := n.dht.Bootstrap(ctx); err != nil && ctx.Err() == nil {
					n.log.Warn("dht bootstrap", "err", err)
				}
				backoff = time.Second
			} else {
				backoff = min(2*backoff, time.Minute)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
	}
}

func (n *Network) needBootstrap(peers []peer.AddrInfo) bool {
	if len(peers) == 0 || len(n.host.Network().Peers()) >= n.cfg.ConnLow {
		return false
	}
	for _, ai := range peers {
		if ai.ID != n.host.ID() && n.Connected(ai.ID) {
			return false
		}
	}
	return true
}

// dialBootstrap dials every bootstrap peer at once and reports whether one answered.
func (n *Network) dialBootstrap(ctx context.Context, peers []peer.AddrInfo) bool {
	var wg sync.WaitGroup
	var ok atomic.Bool
	for _, ai := range peers {
		if ai.ID == n.host.ID() {
			ok.Store(true) // a bootstrap node lists itself; it is where others start
			continue
		}
		wg.Add(1)
		go func(ai peer.AddrInfo) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			start := time.Now()
			if err := n.host.Connect(ctx, ai); err != nil {
				if ctx.Err() == nil || time.Since(start) >= 15*time.Second {
					n.log.Warn("bootstrap peer unreachable; will retry", "peer", ai.ID, "err", err)
				}
				return
			}
			ok.Store(true)
			n.log.Debug("bootstrap peer connected", "peer", ai.ID, "took", time.Since(start))
		}(ai)
	}
	wg.Wait()
	return ok.Load()
}

type mdnsNotifee struct{ n *Network }

func (m mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) {
	if ai.ID == m.n.host.ID() {
		return
	}
	ctx, cancel := context.WithTimeout(m.n.ctx(), 10*time.Second)
	defer cancel()
	if err := m.n.host.Connect(ctx, ai); err != nil {
		m.n.log.Debug("mDNS peer unreachable", "peer", ai.ID, "err", err)
	}
}

// watchJoins reacts to peers joining the topic. A node whose last publication reached
// fewer than announceReach topic peers republishes soon after a join (joins are
// coalesced), so that its record gets out once it has neighbours; and a node that has
// just got its first neighbours pulls the market from the first joinPulls of them.
// Nodes already in the network do neither: a newcomer pulls from them, and their
// records reached the network when they were published. Were every node to republish
// whenever any peer joined, each join would flood the topic with one record per node,
// and a network of n nodes starting up would carry n² publications.
func (n *Network) watchJoins(ctx context.Context) error {
	h, err := n.topic.EventHandler()
	if err != nil {
		return fmt.Errorf("p2p: topic events: %w", err)
	}
	defer h.Cancel()
	pulls := 0
	for {
		ev, err := h.NextPeerEvent(ctx)
		if err != nil {
			return ctx.Err()
		}
		switch ev.Type {
		case pubsub.PeerJoin:
			n.mu.Lock()
			announce := n.reached < announceReach
			n.mu.Unlock()
			if announce {
				n.Refresh()
			}
			if pulls < joinPulls && n.syncFrom(ctx, ev.Peer) {
				pulls++
			}
		case pubsub.PeerLeave:
			if len(n.topic.ListPeers()) == 0 {
				// Alone again: start over as a newcomer when peers come back.
				pulls = 0
				n.mu.Lock()
				n.reached = 0
				n.mu.Unlock()
			}
		}
	}
}

const (
	// announceReach is how many topic peers a publication must go out to for the node
	// to stop republishing on joins: gossipsub's mesh degree, past which the record
	// travels on through the mesh.
	announceReach = 6
	// joinPulls is how many neighbours a newcomer pulls the market from.
	joinPulls = 3
)

func (n *Network) publishLoop(ctx context.Context) error {
	snap := time.NewTicker(time.Duration(n.cfg.SnapshotInterval))
	defer snap.Stop()
	const joinDebounce = 500 * time.Millisecond
	publish := func(force bool) {
		if err := n.publish(ctx, force); err != nil && ctx.Err() == nil {
			n.log.Warn("publish capacity record", "err", err)
		}
	}
	publish(true)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-n.publishNow:
			// Coalesce a burst of joins into one publication.
			select {
			case <-time.After(joinDebounce):
			case <-ctx.Done():
				return ctx.Err()
			}
			select { // a join during the pause is covered by this publication
			case <-n.publishNow:
			default:
			}
			publish(true)
		case <-snap.C:
			n.mu.Lock()
			due := n.now().Sub(n.publishedAt) >= time.Duration(n.cfg.RepublishInterval)
			n.mu.Unlock()
			publish(due)
		}
	}
}

// publish takes a snapshot and publishes it if it changed or force is set.
func (n *Network) publish(ctx context.Context, force bool) error {
	c, err := n.deps.Snapshot(ctx)
	if err != nil {
		return fmt.Errorf("capacity snapshot: %w", err)
	}
	if c.SoftwareVersion == "" {
		c.SoftwareVersion = version.Get()
	}
	if err := c.Check(); err != nil {
		return fmt.Errorf("capacity snapshot: %w", err)
	}
	n.mu.Lock()
	if !force && n.published != nil && reflect.DeepEqual(*n.published, c) {
		n.mu.Unlock()
		return nil
	}
	now := n.now()
	// A nanosecond clock keeps seq increasing across restarts without storing it.
	n.seq = max(n.seq+1, uint64(now.UnixNano()))
	rec := &capacity.Record{
		Version: capacity.Version, PeerID: n.host.ID().String(), Seq: n.seq, Timestamp: now.Unix(),
		EthAddress: n.ethAddr, EthSignature: n.ethSig, Capacity: c,
	}
	n.published = &c
	n.publishedAt = now
	// Flood publishing sends the record to every topic peer.
	n.reached = len(n.topic.ListPeers())
	n.mu.Unlock()
	b, err := capacity.Seal(rec, n.key)
	if err != nil {
		return err
	}
	// The local publication runs through the validator too, which files it in the
	// market view like any other.
	return n.topic.Publish(ctx, b)
}

// validate is the gossipsub validator of the capacity topic; it also files accepted
// records in the market view, so that no queue stands between a verified record and the
// view. Invalid records are rejected, which costs the peer that delivered them score;
// stale ones are ignored, since an honest peer may relay an older record that crossed
// a newer one in flight.
func (n *Network) validate(_ context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	rec, err := capacity.Open(msg.GetData(), n.now(), time.Duration(n.cfg.RecordTTL), maxSkew)
	if err == nil && rec.PeerID != msg.GetFrom().String() {
		err = &capacity.Error{Reason: capacity.ReasonPeerMismatch,
			Err: fmt.Errorf("record of %s published by %s", rec.PeerID, msg.GetFrom())}
	}
	if err != nil {
		reason := capacity.ReasonOf(err)
		n.metrics.invalid.WithLabelValues(string(reason)).Inc()
		n.log.Debug("refused capacity record", "from", from, "publisher", msg.GetFrom(), "reason", reason, "err", err)
		return pubsub.ValidationReject
	}
	switch n.admit(msg.GetFrom(), rec, msg.GetData(), true) {
	case admitted, admitRelay:
		return pubsub.ValidationAccept
	default:
		// Stale, or valid but without room in the view: not the relaying peer's fault.
		return pubsub.ValidationIgnore
	}
}

// drain empties the topic subscription. The node subscribes to be part of the topic's
// mesh; the records themselves reach the market view through the validator.
func (n *Network) drain(ctx context.Context) error {
	for {
		if _, err := n.sub.Next(ctx); err != nil {
			return ctx.Err()
		}
	}
}

// admit offers a verified record to the market view and counts the outcome. A stale
// record is counted only when it came by gossip: market sync passes on every record
// its peer holds, most of them known already.
func (n *Network) admit(id peer.ID, rec *capacity.Record, env []byte, gossiped bool) admission {
	now := n.now()
	a := n.market.admit(id, rec, env, now, gossiped)
	switch a {
	case admitted:
		n.metrics.accepted.Inc()
		if n.deps.OnRecord != nil {
			n.deps.OnRecord(rec, now)
		}
	case admitStale:
		if gossiped {
			n.metrics.invalid.WithLabelValues(string(capacity.ReasonStaleSeq)).Inc()
		}
	case admitFull:
		n.metrics.dropped.WithLabelValues(droppedMarketFull).Inc()
	}
	return a
}

// Connected reports whether a connection to id is open.
func (n *Network) Connected(id peer.ID) bool {
	return n.host.Network().Connectedness(id) == network.Connected
}
