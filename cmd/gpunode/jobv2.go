package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/gpunode/gpunode/job/seal"
	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/node/market"
)

// v2Read are the flags of a command that reads a job from JobMarketV2.
type v2Read struct{ f v2Flags }

func addV2Read(cmd *cobra.Command) *v2Read {
	r := &v2Read{}
	fs := cmd.Flags()
	fs.StringVar(&r.f.deployment, "deployment", "", "devchain deployment file: read the job from its JobMarketV2")
	fs.StringVar(&r.f.rpcURL, "rpc-url", "", "Ethereum JSON-RPC endpoint (with --job-market-v2)")
	fs.StringVar(&r.f.jobMarketV2, "job-market-v2", "", "read the job from this JobMarketV2")
	fs.Uint64Var(&r.f.startBlock, "start-block", 0, "block where the JobMarketV2 was deployed (speeds up event searches)")
	return r
}

func (r *v2Read) set() bool { return r.f.deployment != "" || r.f.jobMarketV2 != "" }

func jobNumber(s string) (*big.Int, error) {
	n, ok := new(big.Int).SetString(s, 10)
	if !ok || n.Sign() <= 0 {
		return nil, fmt.Errorf("job %q: not a job number", s)
	}
	return n, nil
}

// printV2Job prints a JobMarketV2 job's state and each drawn validator's commit, reveal
// and slash.
func printV2Job(ctx context.Context, w io.Writer, v *market.V2, id *big.Int) error {
	j, err := v.Job(ctx, id)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "On JobMarketV2:\t%s (sponsor %s", market.V2StateName(j.State), j.Sponsor.Hex())
	if j.Provider != ([20]byte{}) {
		fmt.Fprintf(tw, ", provider %s", j.Provider.Hex())
	}
	dir := "higher is better"
	if j.LowerIsBetter {
		dir = "lower is better"
	}
	fmt.Fprintf(tw, ", %d pass, %d fail, threshold %d, %s)\n", j.Passes, j.Fails, j.Threshold, dir)
	tw.Flush()
	if market.JobState(j.State) < market.V2Accepted || market.JobState(j.State) == market.V2Cancelled {
		return nil
	}
	votes, err := v.Votes(ctx, id)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "\nValidators (drawn):")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  VALIDATOR\tCOMMITTED\tREVEALED\tSCORE\tPASS\tSLASHED (wei)")
	for _, vt := range votes {
		committed, revealed, score, pass, slashed := "no", "no", "-", "-", "-"
		if vt.Commitment != ([32]byte{}) {
			committed = "yes"
		}
		if vt.Revealed {
			revealed, score, pass = "yes", fmt.Sprint(vt.Score), fmt.Sprint(vt.Pass)
		}
		if vt.Slashed != nil {
			slashed = vt.Slashed.String()
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", vt.Validator.Hex(), committed, revealed, score, pass, slashed)
	}
	return tw.Flush()
}

// fetchSealed downloads a JobMarketV2 job's sealed checkpoint through the daemon's IPFS,
// checks it against the chain and opens it into dir with the key released on chain.
func fetchSealed(ctx context.Context, w io.Writer, c *api.Client, v *market.V2, id *big.Int, dir string) error {
	res, err := v.SealedResult(ctx, id)
	if err != nil {
		return err
	}
	if !res.Released {
		return fmt.Errorf("job %s: its key is not on chain yet (it is released when the provider is paid): the checkpoint cannot be opened", id)
	}
	tmp, err := os.MkdirTemp("", "gpunode-sealed-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := c.IPFSDownload(ctx, res.CID, tmp); err != nil {
		return err
	}
	k := seal.Key(res.Key)
	if !k.Matches(res.KeyHash) {
		return fmt.Errorf("job %s: the released key does not match the committed hash %s", id, res.KeyHash.Hex())
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := seal.OpenFile(tmp, dir, k, v.Binding(id, res.Provider), res.ResultHash.Hex()); err != nil {
		return fmt.Errorf("job %s: checkpoint %s: %w: do not trust what %s holds", id, res.CID, err, dir)
	}
	_, err = fmt.Fprintf(w, "job %s: sealed checkpoint %s opened into %s with the key released on chain; its hash and binding match the chain\n", id, res.CID, dir)
	return err
}

func dialRead(cmd *cobra.Command, r *v2Read) (*market.V2, error) {
	if !r.set() {
		return nil, errors.New("no JobMarketV2: give --deployment or --rpc-url and --job-market-v2")
	}
	return r.f.dial(cmd, false)
}
