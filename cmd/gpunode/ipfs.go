package main

import (
	"context"
	"fmt"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gpunode/gpunode/node/api"
)

func newIPFSCmd() *cobra.Command {
	var socket string
	cmd := &cobra.Command{
		Use:   "ipfs",
		Short: "Add, fetch and list content on the node's IPFS (through the daemon)",
	}
	apiSocketVar(cmd.PersistentFlags(), &socket)

	var name string
	add := &cobra.Command{
		Use:   "add PATH",
		Short: "Add a file or directory, pin it and publish it; prints its CID",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := filepath.Abs(args[0])
			if err != nil {
				return err
			}
			if name == "" {
				name = filepath.Base(p)
			}
			// The content goes over the socket: the daemon need not see the path.
			res, err := api.NewClient(socket).IPFSUpload(cmd.Context(), p, name)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), res.CID)
			if res.Remote != "" {
				fmt.Fprintln(cmd.ErrOrStderr(), "remote pin:", res.Remote)
			}
			return nil
		},
	}
	add.Flags().StringVar(&name, "name", "", "pin name (default: the path's base name)")

	get := &cobra.Command{
		Use:   "get CID DIR",
		Short: "Fetch CID (verified, resumable) and write it into DIR",
		Long: "Fetch CID into the daemon's input cache, then write a copy into DIR (sent over the\n" +
			"control socket, so the daemon need not be able to write DIR): a directory's entries\n" +
			"go into DIR, a file becomes DIR/CID. Progress is printed to stderr.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := filepath.Abs(args[1])
			if err != nil {
				return err
			}
			c := api.NewClient(socket)
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			go printProgress(ctx, cmd, c, args[0])
			if err := c.IPFSDownload(ctx, args[0], dir); err != nil {
				return err
			}
			if p, err := c.IPFSFetch(ctx, args[0]); err == nil {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %d blocks (%d already local), %d bytes -> %s\n",
					p.CID, p.Blocks, p.Local, p.Bytes, dir)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: from the input cache -> %s\n", args[0], dir)
			}
			return nil
		},
	}

	pins := &cobra.Command{
		Use:   "pins",
		Short: "List pinned content",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			list, err := api.NewClient(socket).IPFSPins(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CID\tKIND\tNAME\tREMOTE\tCREATED")
			for _, p := range list {
				remote := "-"
				if p.Remote != nil {
					remote = p.Remote.Status
				}
				created := "-"
				if !p.Created.IsZero() {
					created = p.Created.Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.CID, p.Kind, p.Name, remote, created)
			}
			return tw.Flush()
		},
	}
	unpin := &cobra.Command{
		Use:   "unpin CID",
		Short: "Unpin content; its blocks go at the next garbage collection",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return api.NewClient(socket).IPFSUnpin(cmd.Context(), args[0])
		},
	}
	gc := &cobra.Command{
		Use:   "gc",
		Short: "Delete every block that no pin reaches",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := api.NewClient(socket).IPFSGC(cmd.Context())
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "removed %d blocks, %d bytes\n", res.Blocks, res.Bytes)
			return err
		},
	}
	cmd.AddCommand(add, get, pins, unpin, gc)
	return cmd
}

// printProgress reports a running fetch every second until ctx ends.
func printProgress(ctx context.Context, cmd *cobra.Command, c *api.Client, cid string) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p, err := c.IPFSFetch(ctx, cid)
		if err != nil || p.State != "fetching" {
			continue
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "%s: %d blocks, %d from network, %d bytes\n", cid, p.Blocks, p.FromNetwork, p.Bytes)
	}
}
