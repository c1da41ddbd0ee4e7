package ipfs

import (
	"testing"
)

func TestResolvePublicDHT(t *testing.T) {
	for _, c := range []struct {
		mode     string
		chainID  uint64
		hasChain bool
		want     string
	}{
		{PublicDHTAuto, 1, true, PublicDHTOn},
		{PublicDHTAuto, 8453, true, PublicDHTOn},
		{PublicDHTAuto, 1337, true, PublicDHTOff},
		{PublicDHTAuto, 0, false, PublicDHTOff},
		{PublicDHTOn, 1337, true, PublicDHTOn},
		{PublicDHTOff, 1, true, PublicDHTOff},
	} {
		if got := ResolvePublicDHT(c.mode, c.chainID, c.hasChain); got != c.want {
			t.Errorf("ResolvePublicDHT(%s, %d, %v) = %s, want %s", c.mode, c.chainID, c.hasChain, got, c.want)
		}
	}
}
