package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gpunode/gpunode/node/api"
)

func newImageCmd() *cobra.Command {
	var socket string
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Pull, list and prune the node's job images",
	}
	apiSocketVar(cmd.PersistentFlags(), &socket)

	var allowTag bool
	pull := &cobra.Command{
		Use:   "pull REF",
		Short: "Pull an image by digest (repo@sha256:…) into the node's cache",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			var last time.Time
			im, err := api.NewClient(socket).PullImage(cmd.Context(), api.PullRequest{Ref: args[0], AllowTag: allowTag}, func(p api.PullProgress) {
				if time.Since(last) < 500*time.Millisecond && p.LayersDone < p.Layers {
					return
				}
				last = time.Now()
				fmt.Fprintf(out, "layers %d/%d  %s/%s\n", p.LayersDone, p.Layers, humanBytes(p.BytesDone), humanBytes(p.BytesTotal))
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "pulled %s (%s, %s)\n", args[0], shortImageID(im.ID), humanBytes(im.SizeBytes))
			return nil
		},
	}
	pull.Flags().BoolVar(&allowTag, "allow-tag", false, "accept a tag-only reference (jobs always need a digest)")

	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the images this node pulled, least recently used first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			imgs, err := api.NewClient(socket).Images(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSIZE\tLAST USED\tREFERENCES")
			for _, im := range imgs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", shortImageID(im.ID), humanBytes(im.SizeBytes), im.LastUsed.Local().Format(time.DateTime), strings.Join(im.Refs, ", "))
			}
			return tw.Flush()
		},
	}

	var capStr string
	prune := &cobra.Command{
		Use:   "prune",
		Short: "Remove least recently used images until the cache fits its cap",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var req api.PruneRequest
			if capStr != "" {
				n, err := parseBytes(capStr)
				if err != nil {
					return fmt.Errorf("--cap: %w", err)
				}
				req.CapBytes = &n
			}
			rep, err := api.NewClient(socket).PruneImages(cmd.Context(), req)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, im := range rep.Removed {
				fmt.Fprintf(out, "removed %s %s\n", shortImageID(im.ID), strings.Join(im.Refs, ", "))
			}
			fmt.Fprintf(out, "freed %s; cache now %s of %s\n", humanBytes(rep.FreedBytes), humanBytes(rep.TotalBytes), humanBytes(rep.CapBytes))
			return nil
		},
	}
	prune.Flags().StringVar(&capStr, "cap", "", "prune down to this size (e.g. 50GiB, 0 for every unused image) instead of the configured cap")

	cmd.AddCommand(pull, ls, prune)
	return cmd
}

func shortImageID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.m
			break
		}
	}
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil || n < 0 {
		return 0, fmt.Errorf("%q: want a size such as 50GiB", s)
	}
	return n * mult, nil
}
