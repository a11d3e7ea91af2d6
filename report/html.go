package report

import (
	"cmp"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"math"
	"slices"
	"strconv"
	"time"
)

//go:embed assets/report.html.tmpl assets/report.css assets/report.js
var assets embed.FS

var (
	htmlTemplate = template.Must(template.ParseFS(assets, "assets/report.html.tmpl"))
	htmlCSS      = mustAsset("assets/report.css")
	htmlScript   = mustAsset("assets/report.js")
	// htmlCSP lets the page run only its own inline script and style (by
	// hash) and load nothing at all: the report works offline, and even a
	// row that slipped past escaping could not run a script or call home.
	htmlCSP = "default-src 'none'; style-src " + cspHash(htmlCSS) + "; script-src " + cspHash(htmlScript) +
		"; base-uri 'none'; form-action 'none'"
)

func mustAsset(name string) string {
	b, err := assets.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func cspHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// WriteHTML writes r as one self-contained HTML page: the run's facts, the
// counts by status, a chart of each certificate's renew→deploy time against
// the window, and a table of every row that can be filtered by status and
// searched. The page loads nothing from the network (inline CSS and script,
// an inline SVG chart) and everything from the run is escaped by
// html/template. The filter can be set from the URL fragment, e.g.
// report.html#status=failed&q=web. Rows are written one at a time.
func WriteHTML(w io.Writer, r *Report) error {
	if err := htmlTemplate.ExecuteTemplate(w, "head", newHTMLPage(r)); err != nil {
		return err
	}
	for i := range r.Rows {
		if err := htmlTemplate.ExecuteTemplate(w, "row", newHTMLRow(&r.Rows[i])); err != nil {
			return err
		}
	}
	footer := "written by runner"
	if r.Run.Version != "" {
		footer += " " + r.Run.Version
	}
	return htmlTemplate.ExecuteTemplate(w, "foot", struct {
		Footer string
		Script template.JS
	}{text(footer), template.JS(htmlScript)})
}

type htmlPage struct {
	CSP          string
	CSS          template.CSS
	Title, Plan  string
	Verdict      string
	VerdictClass string
	NotRun       string
	Facts        []fact
	Counts       []htmlCount
	Total        int
	Chart        *htmlChart
}

type htmlCount struct {
	Status Status
	N      int
}

func newHTMLPage(r *Report) *htmlPage {
	c := r.Counts()
	p := &htmlPage{
		CSP:    htmlCSP,
		CSS:    template.CSS(htmlCSS),
		Title:  "runner report",
		Plan:   text(r.Run.PlanFile),
		NotRun: text(r.Run.NotRun),
		Total:  len(r.Rows),
		Facts:  runFacts(&r.Run),
		Chart:  newHTMLChart(r),
	}
	if p.Plan != "" {
		p.Title += ": " + p.Plan
	}
	for _, s := range statuses {
		p.Counts = append(p.Counts, htmlCount{s, c[s]})
	}
	switch {
	case r.Run.NotRun != "":
		p.Verdict, p.VerdictClass = "The run did not happen", "notrun"
	case c[Failed] > 0:
		p.Verdict, p.VerdictClass = fmt.Sprintf("%d of %d rows failed", c[Failed], len(r.Rows)), "failed"
	default:
		p.Verdict, p.VerdictClass = fmt.Sprintf("No row failed (%d rows)", len(r.Rows)), "succeeded"
	}
	if r.Run.DryRun {
		p.Verdict = "Dry run: " + p.Verdict
	}
	if r.Run.Interrupted {
		p.Verdict += "; the run was interrupted"
	}
	return p
}

type htmlRow struct {
	Line                      int
	Certificate, Store, Alias string
	Status, Stage             string
	Detail, Error             string
	Warnings                  []string
	NewCertificate            string
	Times                     []htmlTime
	Due, Expires              string
}

type htmlTime struct{ What, At, Shown string }

// appendTime adds the event at t, shown as "+31ms" after since when since
// is known and not after t.
func appendTime(times []htmlTime, what string, t, since time.Time) []htmlTime {
	if t.IsZero() {
		return times
	}
	shown := formatTime(t)
	if !since.IsZero() && !t.Before(since) {
		shown = "+" + formatGap(t.Sub(since))
	}
	return append(times, htmlTime{What: what, At: formatTime(t), Shown: shown})
}

func newHTMLRow(row *Row) htmlRow {
	h := htmlRow{
		Line:           row.Line,
		Certificate:    text(certificateName(row)),
		Store:          text(row.StoreID),
		Alias:          text(row.Alias),
		Status:         text(string(row.Status)),
		Stage:          text(string(row.Stage)),
		Detail:         text(row.Detail),
		Error:          text(row.Error),
		NewCertificate: idText(row.NewCertificateID),
		Due:            formatTime(row.DueAt),
		Expires:        formatTime(row.Expires),
	}
	for _, wn := range row.Warnings {
		h.Warnings = append(h.Warnings, text(wn))
	}
	// Deploy and verify are shown after the renewal, which is what the
	// window is about; without a renewal in this row, as they happened.
	h.Times = appendTime(h.Times, "renewed", row.RenewedAt, time.Time{})
	h.Times = appendTime(h.Times, "deployed", row.DeployedAt, row.RenewedAt)
	h.Times = appendTime(h.Times, "verified", row.VerifiedAt, row.RenewedAt)
	return h
}

// The chart's geometry, in SVG user units.
const (
	chartWidth     = 960
	chartLabelW    = 190 // certificate labels, right-aligned
	chartValueW    = 110 // the gap in words, after the bar
	chartTop       = 22  // room for the tick labels
	chartRowH      = 20
	chartBarH      = 14
	chartMaxBars   = 60
	chartFloor     = 10 * time.Millisecond // the log scale starts here
	defaultWindow  = 5 * time.Minute       // Command's staging window, when the run did not say
	chartNearShare = 0.8                   // a gap past this share of the window is drawn as near
)

type htmlChart struct {
	Width, Height            int
	Top, Bottom              int
	LabelX, PlotX, BarHeight int
	Window                   string
	WindowX                  string
	Note                     string
	Ticks                    []htmlTick
	Bars                     []htmlBar
}

type htmlTick struct{ X, Label string }

type htmlBar struct {
	Label, Title, Value string
	Class               string
	Y, TextY            int
	W, ValueX           string
}

// certTiming is one certificate's renewal and deploy in this run; its rows
// (one per store) share the renewal, and the deploy is the latest of theirs.
type certTiming struct {
	name              string
	newID             int
	renewed, deployed time.Time
	undeployed        bool // some store of it has no deploy
}

func (c *certTiming) gap() time.Duration {
	if c.deployed.IsZero() || c.deployed.Before(c.renewed) {
		return -1
	}
	return c.deployed.Sub(c.renewed)
}

// newHTMLChart draws each renewed certificate as a bar from renewal to its
// deploy on a log scale (the gaps are milliseconds, the window minutes),
// with the window as a dashed line; a certificate renewed but not deployed
// is drawn to the window in pale red. With more certificates than fit, the
// slowest are shown. It is nil when nothing was renewed.
func newHTMLChart(r *Report) *htmlChart {
	byName := map[string]*certTiming{}
	var certs []*certTiming
	for i := range r.Rows {
		row := &r.Rows[i]
		if row.RenewedAt.IsZero() {
			continue
		}
		name := certificateName(row)
		c := byName[name]
		if c == nil {
			c = &certTiming{name: name, newID: row.NewCertificateID, renewed: row.RenewedAt}
			byName[name] = c
			certs = append(certs, c)
		}
		if row.RenewedAt.Before(c.renewed) {
			c.renewed = row.RenewedAt
		}
		if row.DeployedAt.IsZero() {
			c.undeployed = true
		} else if row.DeployedAt.After(c.deployed) {
			c.deployed = row.DeployedAt
		}
	}
	if len(certs) == 0 {
		return nil
	}
	window := r.Run.Window
	if window <= 0 {
		window = defaultWindow
	}
	// Slowest first: a certificate not deployed, then the longest gaps.
	order := func(c *certTiming) time.Duration {
		if c.undeployed || c.gap() < 0 {
			return math.MaxInt64
		}
		return c.gap()
	}
	slices.SortStableFunc(certs, func(a, b *certTiming) int { return cmp.Compare(order(b), order(a)) })

	ch := &htmlChart{
		Width:     chartWidth,
		Top:       chartTop,
		LabelX:    chartLabelW - 8,
		PlotX:     chartLabelW,
		BarHeight: chartBarH,
	}
	if r.Run.Window > 0 {
		ch.Window = r.Run.Window.String()
	}
	if len(certs) > chartMaxBars {
		ch.Note = fmt.Sprintf("The %d slowest of %d renewed certificates.", chartMaxBars, len(certs))
		certs = certs[:chartMaxBars]
	}
	hi := window
	for _, c := range certs {
		hi = max(hi, c.gap())
	}
	plotW := float64(chartWidth - chartLabelW - chartValueW)
	x := func(d time.Duration) float64 {
		if d <= chartFloor {
			return 0
		}
		return plotW * math.Log(float64(d)/float64(chartFloor)) / math.Log(float64(hi)/float64(chartFloor))
	}
	for _, t := range chartTicks {
		if t.at > hi {
			break
		}
		ch.Ticks = append(ch.Ticks, htmlTick{X: svgNum(chartLabelW + x(t.at)), Label: t.label})
	}
	ch.WindowX = svgNum(chartLabelW + x(window))

	for i, c := range certs {
		y := chartTop + 6 + i*chartRowH
		b := htmlBar{Y: y, TextY: y + chartBarH - 3, Label: text(c.name)}
		if c.newID != 0 {
			b.Label += " → " + strconv.Itoa(c.newID)
		}
		var w float64
		switch gap := c.gap(); {
		case c.undeployed || gap < 0:
			w, b.Class, b.Value = x(window), "undeployed", "not deployed"
			b.Title = fmt.Sprintf("certificate %s renewed %s, not deployed to every store", text(c.name), formatTime(c.renewed))
		default:
			w, b.Value = x(gap), formatGap(gap)
			switch {
			case gap >= window:
				b.Class = "over"
			case float64(gap) >= chartNearShare*float64(window):
				b.Class = "near"
			default:
				b.Class = "ok"
			}
			b.Title = fmt.Sprintf("certificate %s renewed %s, deployed %s later", text(c.name), formatTime(c.renewed), formatGap(gap))
		}
		w = max(w, 2) // a bar of a few milliseconds must still be seen
		b.W = svgNum(w)
		b.ValueX = svgNum(chartLabelW + w + 6)
		ch.Bars = append(ch.Bars, b)
	}
	ch.Bottom = chartTop + 6 + len(certs)*chartRowH
	ch.Height = ch.Bottom + 8
	return ch
}

func svgNum(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }

// formatGap shows a renew→deploy gap to the millisecond below a minute.
func formatGap(d time.Duration) string {
	if d < time.Minute {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// chartTicks mark the log scale's decades, and the minutes beyond.
var chartTicks = []struct {
	at    time.Duration
	label string
}{
	{chartFloor, "10ms"}, {100 * time.Millisecond, "100ms"}, {time.Second, "1s"}, {10 * time.Second, "10s"},
	{time.Minute, "1m"}, {10 * time.Minute, "10m"}, {time.Hour, "1h"},
}
