package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gpunode/gpunode/node/api"
)

func newPeersCmd() *cobra.Command {
	var asJSON bool
	var socket string
	cmd := &cobra.Command{
		Use:   "peers",
		Short: "Show this node's peer ID and addresses and its connected peers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := api.NewClient(socket).P2PPeers(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return p2pWriteJSON(cmd.OutOrStdout(), p)
			}
			return printPeers(cmd.OutOrStdout(), p)
		},
	}
	apiSocketVar(cmd.Flags(), &socket)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON for scripts")
	return cmd
}

func printPeers(w io.Writer, p api.P2PPeers) error {
	fmt.Fprintf(w, "Peer ID: %s\n", p.ID)
	for _, a := range p.Addrs {
		fmt.Fprintf(w, "  %s\n", a)
	}
	fmt.Fprintf(w, "%d connected peers\n", len(p.Peers))
	for _, g := range p.Graylisted {
		fmt.Fprintf(w, "graylisted until %s: %s\n", g.Until.Format(time.RFC3339), g.ID)
	}
	if len(p.Peers) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tSCORE\tLATENCY\tADDRESS\tAGENT")
	for _, pi := range p.Peers {
		fmt.Fprintf(tw, "%s\t%.1f\t%.1fms\t%s\t%s\n", pi.ID, pi.Score, pi.LatencyMS, strings.Join(pi.Addrs, ","), pi.Agent)
	}
	return tw.Flush()
}

func newMarketCmd() *cobra.Command {
	var asJSON bool
	var socket string
	cmd := &cobra.Command{
		Use:   "market",
		Short: "List the capacity records this node has learned from the network",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := api.NewClient(socket).P2PMarket(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return p2pWriteJSON(cmd.OutOrStdout(), m)
			}
			return printMarket(cmd.OutOrStdout(), m)
		},
	}
	apiSocketVar(cmd.Flags(), &socket)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON for scripts")
	return cmd
}

func printMarket(w io.Writer, m api.P2PMarket) error {
	if len(m.Records) == 0 {
		_, err := fmt.Fprintln(w, "no capacity records yet: is the node connected? see `gpunode peers`")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tGPUS\tSCORE\tVERIFIED\tPRICE (wei/GPU-h)\tFREE\tAGE")
	for _, r := range m.Records {
		var gpus []string
		for _, g := range r.GPUs {
			gpus = append(gpus, fmt.Sprintf("%d× %s", g.Count, g.Model))
		}
		if len(gpus) == 0 {
			gpus = []string{"none"}
		}
		id := r.PeerID
		if r.Self {
			id += " (self)"
		}
		age := (time.Duration(r.AgeSeconds) * time.Second).String()
		verified := "-"
		if v := r.Verified; v != nil && v.Passed {
			verified = fmt.Sprintf("%.4f (%s n=%d)", v.TFLOPS, v.Precision, v.N)
		} else if v != nil {
			verified = "failed (" + v.Failed + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%.1f\t%s\t%s\t%d/%d\t%s\n", id, strings.Join(gpus, ", "), r.Score, verified, r.PricePerGPUHour, r.FreeGPUs, r.TotalGPUs, age)
	}
	return tw.Flush()
}

func p2pWriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
