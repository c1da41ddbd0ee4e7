package offers

import (
	"context"
	"errors"
	"math/big"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/gpunode/gpunode/contracts/bindings"
	"github.com/gpunode/gpunode/node/market"
)

// postedCache remembers what the chain said of the jobs peers offered, so that offers
// naming the same job id cost one chain lookup however many peers send them, and
// concurrent offers of one id share the lookup in flight. A job's JobPosted event never
// changes once final; that a job is not posted is remembered for a short while only,
// since it may be posted next.
type postedCache struct {
	max    int
	negTTL time.Duration
	now    func() time.Time

	group singleflight.Group

	mu      sync.Mutex
	entries map[string]postedEntry
}

type postedEntry struct {
	ev  *bindings.JobMarketJobPosted // nil: not posted
	at  time.Time
	use time.Time
}

func newPostedCache(max int, negTTL time.Duration) *postedCache {
	return &postedCache{max: max, negTTL: negTTL, now: time.Now, entries: map[string]postedEntry{}}
}

// get returns job id's JobPosted event, from the cache or from lookup. A job that is not
// posted is market.ErrNotPosted; other errors (the chain not answering) are not kept.
func (c *postedCache) get(ctx context.Context, id *big.Int, lookup func(context.Context, *big.Int) (*bindings.JobMarketJobPosted, error)) (*bindings.JobMarketJobPosted, error) {
	key := id.String()
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries[key]
	if ok && (e.ev != nil || now.Sub(e.at) < c.negTTL) {
		e.use = now
		c.entries[key] = e
		c.mu.Unlock()
		if e.ev == nil {
			return nil, market.ErrNotPosted
		}
		return e.ev, nil
	}
	c.mu.Unlock()
	v, err, _ := c.group.Do(key, func() (any, error) {
		ev, err := lookup(ctx, id)
		switch {
		case errors.Is(err, market.ErrNotPosted):
			c.put(key, nil)
		case err == nil:
			c.put(key, ev)
		}
		return ev, err
	})
	if err != nil {
		return nil, err
	}
	return v.(*bindings.JobMarketJobPosted), nil
}

// put keeps ev under key, making room by forgetting the least recently used entry.
func (c *postedCache) put(key string, ev *bindings.JobMarketJobPosted) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[key]; !ok && len(c.entries) >= c.max {
		var oldest string
		var at time.Time
		for k, e := range c.entries {
			if oldest == "" || e.use.Before(at) {
				oldest, at = k, e.use
			}
		}
		delete(c.entries, oldest)
	}
	c.entries[key] = postedEntry{ev: ev, at: now, use: now}
}
