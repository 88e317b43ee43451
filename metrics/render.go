package metrics

import (
	"bufio"
	"io"
	"slices"
	"strconv"
	"strings"
)

// family is one metric: its HELP and TYPE lines and its samples.
type family struct {
	name, help string
	samples    []sample
}

// sample is one line of a family; labels are name, value pairs, sorted by name as Prometheus
// exposes them, so the file reads as node_exporter's /metrics shows it.
type sample struct {
	labels []string
	value  float64
}

func (f *family) add(value float64, labels ...string) {
	pairs := make([][2]string, 0, len(labels)/2)
	for i := 0; i+1 < len(labels); i += 2 {
		pairs = append(pairs, [2]string{labels[i], labels[i+1]})
	}
	slices.SortFunc(pairs, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	sorted := make([]string, 0, len(labels))
	for _, p := range pairs {
		sorted = append(sorted, p[0], p[1])
	}
	f.samples = append(f.samples, sample{labels: sorted, value: value})
}

// flag is a gauge's value for a condition.
func flag(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// write renders the families in the text exposition format; every metric here is a gauge.
func write(w io.Writer, families []*family) error {
	bw := bufio.NewWriter(w)
	for _, f := range families {
		bw.WriteString("# HELP " + f.name + " " + helpEscaper.Replace(f.help) + "\n")
		bw.WriteString("# TYPE " + f.name + " gauge\n")
		for _, s := range f.samples {
			bw.WriteString(f.name)
			if len(s.labels) > 0 {
				bw.WriteByte('{')
				for i := 0; i+1 < len(s.labels); i += 2 {
					if i > 0 {
						bw.WriteByte(',')
					}
					bw.WriteString(s.labels[i] + `="` + labelValue(s.labels[i+1]) + `"`)
				}
				bw.WriteByte('}')
			}
			bw.WriteString(" " + strconv.FormatFloat(s.value, 'f', -1, 64) + "\n")
		}
	}
	return bw.Flush()
}

// The format's escapes: in HELP a backslash and a newline, in a label value also '"'.
var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

// labelValue escapes v; bytes that are not UTF-8 (a file name can hold any) become U+FFFD,
// as Prometheus accepts only UTF-8 label values.
func labelValue(v string) string {
	return labelEscaper.Replace(strings.ToValidUTF8(v, "\uFFFD"))
}
