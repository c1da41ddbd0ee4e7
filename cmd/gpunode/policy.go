package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/gpunode/gpunode/job"
	"github.com/gpunode/gpunode/node/api"
	"github.com/gpunode/gpunode/node/policy"
)

func newPolicyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Check jobs against a workload policy; reload the daemon's policy",
	}
	cmd.AddCommand(newPolicyCheckCmd(), newPolicyReloadCmd(), newPolicyRejectionsCmd())
	return cmd
}

func newPolicyCheckCmd() *cobra.Command {
	var (
		file, poolFile, poolKey, sponsor, price, model, at string
		bond, token                                        string
		validators                                         []string
		runWindow, prepare                                 time.Duration
		imageBytes                                         int64
		gpus                                               int
		temp, power                                        float64
		asJSON, daemon, asValidator                        bool
		fee                                                string
		socket                                             = api.DefaultSocket
	)
	cmd := &cobra.Command{
		Use:   "check MANIFEST",
		Short: "Explain, rule by rule, whether a policy allows a job",
		Long: `Evaluates a job manifest against a local policy file and, for pool members, the
pool's signed policy, as the node would when the job is offered. Every rule checked is
printed with its verdict and reason. Exits non-zero if the job is denied.

The open-market rules are explained when the job's terms are given: --bond against
max_bond_wei (or the token's max_bond), --token against [tokens], --validators against
[validators], --run-window (and the --prepare time the node would measure) against
min_run_window_factor, --image-bytes against max_image_bytes. A job asking for egress
is declined by the node whatever the policy grants: its runtime cannot enforce an
egress allowlist.

With --as-validator, the policy's [validator] rules are explained instead: whether the
node would evaluate the job as one of its validators (--sponsor, --fee, --token and the
manifest's evaluation image), and the caps its evaluation would run with.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			m, err := job.Decode(f)
			f.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if daemon && asValidator {
				return errors.New("--as-validator explains a policy file; it does not ask the daemon")
			}
			if daemon {
				mb, err := json.Marshal(m)
				if err != nil {
					return err
				}
				d, err := api.NewClient(socket).CheckPolicy(cmd.Context(), api.PolicyCheckRequest{Manifest: mb, Sponsor: sponsor, PriceWei: priceArg(price)})
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				for _, c := range d.Checks {
					fmt.Fprintln(out, policy.Check{Layer: c.Layer, Rule: c.Rule, Kind: policy.Kind(c.Kind), Pass: c.Pass, Detail: c.Detail}.String())
				}
				if !d.Allow {
					return fmt.Errorf("the daemon's policy denies the job")
				}
				fmt.Fprintln(out, "ALLOW")
				return nil
			}
			set := &policy.Set{}
			if poolFile != "" {
				pub, err := policy.ParsePublicKey(poolKey)
				if err != nil {
					return fmt.Errorf("--pool-key: %w", err)
				}
				b, err := os.ReadFile(poolFile)
				if err != nil {
					return err
				}
				v, err := policy.Verify(pub, b)
				if err != nil {
					return fmt.Errorf("%s: %w", poolFile, err)
				}
				set.Pool, set.PoolSeq = v.Policy, v.Seq
			}
			if file != "" {
				b, err := os.ReadFile(file)
				if err != nil {
					return err
				}
				p, err := policy.Parse(b)
				if err != nil {
					return fmt.Errorf("%s: %w", file, err)
				}
				if errs := policy.CheckTightens(set.Pool, p); len(errs) > 0 {
					return fmt.Errorf("%s: refused, a local policy may only tighten the pool's (seq %d): %w", file, set.PoolSeq, errors.Join(errs...))
				}
				set.Local = p
			}
			if asValidator {
				return explainDuty(cmd.OutOrStdout(), set, m, sponsor, token, fee, asJSON)
			}
			r := policy.Request{Manifest: m, Sponsor: sponsor,
				Node: policy.NodeState{GPUModel: model, GPUs: gpus, GPUsFree: gpus, MaxGPUTempC: temp, MaxGPUPowerW: power, Now: time.Now()}}
			if price != "" {
				v, ok := new(big.Int).SetString(price, 10)
				if !ok || v.Sign() < 0 {
					return fmt.Errorf("--price-wei %q: want a non-negative decimal amount", price)
				}
				r.PriceWei = v
			}
			r.Market = policy.Terms{Token: token, Validators: validators, RunWindow: runWindow, PrepareTime: prepare, ImageBytes: imageBytes}
			if bond != "" {
				v, ok := new(big.Int).SetString(bond, 10)
				if !ok || v.Sign() < 0 {
					return fmt.Errorf("--bond %q: want a non-negative decimal amount", bond)
				}
				r.Market.BondWei = v
			}
			if at != "" {
				t, err := time.Parse(time.RFC3339, at)
				if err != nil {
					return fmt.Errorf("--at: %w", err)
				}
				r.Node.Now = t
			}
			d := set.Evaluate(r, policy.Offer)
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(d); err != nil {
					return err
				}
			} else {
				for _, c := range d.Checks {
					fmt.Fprintln(out, c.String())
				}
				if len(d.Checks) == 0 {
					fmt.Fprintln(out, "no rule applies")
				}
			}
			if !d.Allow {
				return fmt.Errorf("policy denies the job: %d rule(s) failed", len(d.Failed()))
			}
			if !asJSON {
				fmt.Fprintln(out, "ALLOW")
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&file, "policy", "", "local policy file (TOML); none: only the pool's or the defaults")
	fl.StringVar(&poolFile, "pool-policy", "", "signed pool policy file")
	fl.StringVar(&poolKey, "pool-key", "", "the pool's public key (gpunode-pool-pub:…), to verify --pool-policy")
	fl.StringVar(&sponsor, "sponsor", "0x0000000000000000000000000000000000000000", "sponsor address offering the job")
	fl.StringVar(&price, "price-wei", "", "offered price in wei per GPU-hour")
	fl.StringVar(&model, "gpu-model", "", "GPU model of the node, as NVML names it")
	fl.IntVar(&gpus, "gpus", 1, "GPUs on the node")
	fl.Float64Var(&temp, "gpu-temp", 0, "hottest GPU temperature, °C")
	fl.Float64Var(&power, "gpu-power", 0, "largest GPU power draw, W")
	fl.StringVar(&at, "at", "", "time of the decision (RFC 3339); default now")
	fl.StringVar(&bond, "bond", "", "bond the job asks the provider to lock, in wei (or the token's unit)")
	fl.StringVar(&token, "token", "", "ERC-20 contract the job pays in; empty for ETH")
	fl.StringSliceVar(&validators, "validators", nil, "the job's validator addresses, comma-separated")
	fl.DurationVar(&runWindow, "run-window", 0, "the job's run window (acceptance to submission deadline)")
	fl.DurationVar(&prepare, "prepare", 0, "time the node would take to fetch the inputs and image, with --run-window")
	fl.Int64Var(&imageBytes, "image-bytes", 0, "size of the job's image as the engine stores it")
	fl.BoolVar(&asValidator, "as-validator", false, "explain the [validator] rules: would the node evaluate this job as its validator")
	fl.StringVar(&fee, "fee", "", "validator fee of the job, in wei (or the token's unit), with --as-validator")
	fl.BoolVar(&asJSON, "json", false, "print the decision as JSON")
	fl.BoolVar(&daemon, "daemon", false, "ask the running daemon, with its policy in force and the node's current state")
	apiSocketVar(fl, &socket)
	return cmd
}

func newPolicyReloadCmd() *cobra.Command {
	socket := api.DefaultSocket
	cmd := &cobra.Command{
		Use:   "reload",
		Short: "Make the daemon re-read its policy files (like SIGHUP); a bad file keeps the old policy",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := api.NewClient(socket).ReloadPolicy(cmd.Context())
			if err != nil {
				return fmt.Errorf("policy reload: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "policy reloaded (local %v, pool seq %d)\n", st.HasLocal, st.PoolSeq)
			for _, o := range st.Overridden {
				fmt.Fprintln(cmd.OutOrStdout(), "warning:", o)
			}
			return nil
		},
	}
	apiSocketVar(cmd.Flags(), &socket)
	return cmd
}

func newPolicyRejectionsCmd() *cobra.Command {
	socket := api.DefaultSocket
	cmd := &cobra.Command{
		Use:   "rejections",
		Short: "List the jobs the daemon recently turned down, and why",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rj, err := api.NewClient(socket).PolicyRejections(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, r := range rj {
				fmt.Fprintf(out, "%s %s from %s\n", r.Time.Format(time.RFC3339), r.Image, r.Sponsor)
				for _, c := range r.Failed {
					fmt.Fprintf(out, "    %s %s: %s\n", c.Layer, c.Rule, c.Detail)
				}
			}
			return nil
		},
	}
	apiSocketVar(cmd.Flags(), &socket)
	return cmd
}

func priceArg(s string) *big.Int {
	v, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return nil
	}
	return v
}
