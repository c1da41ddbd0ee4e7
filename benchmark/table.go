package benchmark

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteTable prints a report for people: every result with its spread, throughput and
// the comparison with each reference that has the problem (reference time / this time:
// above 1 is faster than the reference), then the scores.
func WriteTable(w io.Writer, r *Report, refs ...*Reference) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "CLASS\tPREC\tSHAPE\tDEVICE\tMEDIAN ms\tMIN–MAX ms\tTHROUGHPUT")
	for _, ref := range refs {
		fmt.Fprintf(tw, "\t%s ms\tvs %s", ref.Name, ref.Name)
	}
	fmt.Fprintln(tw)
	for _, res := range r.Results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t", res.Problem.Class, res.Problem.Precision, res.Problem.Shape(), res.Device)
		if res.Skipped != "" {
			fmt.Fprintf(tw, "skipped: %s\t\t", res.Skipped)
			for range refs {
				fmt.Fprint(tw, "\t\t")
			}
			fmt.Fprintln(tw)
			continue
		}
		fmt.Fprintf(tw, "%.3f\t%.3f–%.3f\t", res.MedianMS, res.MinMS, res.MaxMS)
		if res.Problem.Class == ClassAllReduce {
			fmt.Fprintf(tw, "%.2f GB/s busbw", res.BusBW)
		} else {
			fmt.Fprintf(tw, "%.3f TFLOPS", res.TFLOPS)
		}
		for _, ref := range refs {
			if ms, ok := ref.Lookup(res); ok {
				fmt.Fprintf(tw, "\t%.3f\t%.3g×", ms, ms/res.MedianMS)
			} else {
				fmt.Fprint(tw, "\t-\t-")
			}
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nScores (geometric mean per class and precision):\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range r.Scores.Classes {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%.4f %s\t(%d problems)\n", c.Device, c.Class, c.Precision, c.Value, c.Unit, c.Problems)
	}
	for _, d := range r.Scores.Devices {
		fmt.Fprintf(tw, "  %s\tscore\t\t%.4f TFLOPS\t\n", d.Device, d.Score)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nRig score (DL hashrate): %.4f TFLOPS", r.Scores.Rig)
	if r.Scores.AllReduceBusBW > 0 {
		fmt.Fprintf(w, "   all-reduce busbw: %.2f GB/s", r.Scores.AllReduceBusBW)
	}
	_, err := fmt.Fprintf(w, "\n%s, %s profile, %s, %s\n", r.Harness, r.Profile, r.Hardware.CPU, r.CreatedAt.Format("2006-01-02 15:04:05 MST"))
	return err
}
