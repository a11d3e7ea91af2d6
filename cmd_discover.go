package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/urfave/cli/v2"

	"runner/journal"
	"runner/keyfactor"
	"runner/plan"
	"runner/runner"
)

// discoverPageSize is the page size discover asks Command for. Command's
// documented default is 50 and its maximum is not published; 500 keeps
// the requests few for a large inventory (200 for 100,000 certificates)
// and one page of certificates with their locations small in memory.
// AllCertificates never relies on getting it: a server that caps the page
// is paged all the same.
const discoverPageSize = 500

// discoverColumns are the columns of a plan discover writes. The password
// column is always there, so the header can be written before the first
// certificate is read.
var discoverColumns = []string{"certificate_id", "thumbprint", "store_id", "alias", "overwrite", "password"}

// entryPasswordPrefix starts the environment variable names of the
// password cells discover writes.
const entryPasswordPrefix = "RUNNER_ENTRY_PASSWORD_"

func discoverCommand() *cli.Command {
	const cat = "Discover"
	flags := append(connectionFlags(),
		&cli.StringFlag{Name: "query", Category: cat, Usage: `select certificates with Command's query language, e.g. 'IssuedCN -contains "corp"' (ANDed with the flags below)`},
		&cli.StringFlag{Name: "expiring-within", Category: cat, Usage: "only certificates that expire within this time from now: 60d, 720h"},
		&cli.StringFlag{Name: "template", Category: cat, Usage: "only certificates issued from this template (TemplateName -eq)"},
		&cli.BoolFlag{Name: "include-expired", Category: cat, Usage: "also list expired certificates (default: active ones only)"},
		&cli.StringFlag{Name: "out", Category: cat, Usage: "write the plan to this file, replaced atomically (default: stdout)"},
		&cli.StringFlag{Name: "update", Category: cat, Usage: "add the locations missing from this plan to it; written to PLAN.updated.csv unless --out or --in-place"},
		&cli.BoolFlag{Name: "in-place", Category: cat, Usage: "with --update: replace the plan itself, atomically"},
	)
	flags = append(flags, pickFlags("rate", "state", "wait-lock", "log-format", "log-level")...)
	return &cli.Command{
		Name:      "discover",
		Usage:     "write a plan from Command's inventory: one row per (certificate, store) location",
		ArgsUsage: " ",
		Description: "Reads the certificates the query selects, with the stores Command's inventory found each in,\n" +
			"and writes a plan with one row per (certificate, store): the alias the store holds it under,\n" +
			"overwrite true, and an env: password reference for stores whose type takes an entry password.\n" +
			"Certificates in no store, and locations in stores the user cannot schedule on, are left out\n" +
			"and listed in comments at the end. --update adds the locations an existing plan lacks\n" +
			"(certificates renewed by runner are matched through the state file), keeping its comments\n" +
			"and column order.\n\n" +
			"Examples:\n" +
			"   runner discover --expiring-within 60d --out plan.csv\n" +
			"   runner discover --query 'IssuedCN -contains \"corp\"' --template WebServer > plan.csv\n" +
			"   runner discover --update plan.csv --in-place",
		Flags:  flags,
		Action: discoverAction,
	}
}

// discoverOptions is `runner discover` as read from the command line.
type discoverOptions struct {
	query          string // sent as pq.queryString; "" selects every certificate
	includeExpired bool
	out            string // "" for stdout
	update         string // the plan to add rows to, "" for a new plan
}

func discoverAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageError{msg: fmt.Sprintf("discover takes no arguments, got %q", c.Args().Slice()),
			hint: "write the plan with --out PLAN.csv (or > PLAN.csv), or update one with --update PLAN.csv"}
	}
	start := time.Now()
	opts, err := readDiscoverOptions(c, start)
	if err != nil {
		return err
	}
	var existing *existingPlan
	if opts.update != "" {
		if existing, err = readExistingPlan(opts.update); err != nil {
			return err
		}
	}
	logger, gate, err := newLogger(c.String("log-format"), c.String("log-level"), c.App.ErrWriter, false)
	if err != nil {
		return err
	}
	gate.open() // discover is run by hand: nothing to hold back
	cfg, err := connectionConfig(c)
	if err != nil {
		return err
	}
	rate := c.Float64("rate")
	if err := checkRate(rate); err != nil {
		return err
	}
	if err := checkWaitLock(c.Duration("wait-lock")); err != nil {
		return err
	}
	inv := &invocation{log: logger, rate: rate, cfg: runner.Config{Concurrency: 1}}
	client, err := inv.connect(cfg)
	if err != nil {
		return err
	}

	d := &discoverer{client: client, opts: opts, existing: existing, start: start, collection: cfg.CollectionID}
	if existing != nil {
		j, err := openStateForUpdate(c.Context, client.BaseURL(), c.String("state"), c.Duration("wait-lock"))
		if err != nil {
			return err
		}
		if j != nil {
			defer j.Close()
			d.journal = j
		}
	}
	if err := d.preflight(c.Context); err != nil {
		return discoverFailed(c, err)
	}
	if d.typesErr != nil {
		logger.Warn("could not read the certificate store types: no entry-password cells are written and alias rules are not applied", "err", d.typesErr)
	}
	if isTerminal(c.App.ErrWriter) {
		d.progress = &discoverProgress{w: c.App.ErrWriter, now: time.Now, every: 200 * time.Millisecond}
		gate.beforeEachLine(d.progress.clear)
	}

	out, err := openPlanOutput(opts, c.App.Writer)
	if err != nil {
		return err
	}
	defer out.abort()
	err = d.write(c.Context, out.w)
	d.progress.clear()
	if err != nil {
		return discoverFailed(c, err)
	}
	if existing != nil && d.rows == 0 {
		// Nothing to add: leave no copy, and no churn in a plan kept in git.
		out.abort()
		d.summary(c.App.ErrWriter, "")
		return nil
	}
	if err := out.commit(); err != nil {
		return err
	}
	for _, o := range d.odd {
		logger.Warn("Command sent a certificate record that could not be read; it is not in the plan", "id", o.Id, "err", o.Err)
	}
	d.summary(c.App.ErrWriter, out.name)
	return nil
}

// discoverFailed is the error of a discover that stopped: an interrupt
// (exit 130) says so itself, anything else is returned as it is.
func discoverFailed(c *cli.Context, err error) error {
	if c.Context.Err() != nil {
		fmt.Fprintln(c.App.ErrWriter, "runner discover: interrupted; no plan written")
		return runner.ErrInterrupted
	}
	return err
}

// readDiscoverOptions checks every flag before anything is contacted.
func readDiscoverOptions(c *cli.Context, now time.Time) (discoverOptions, error) {
	opts := discoverOptions{includeExpired: c.Bool("include-expired"), out: c.String("out"), update: c.String("update")}
	inPlace := c.Bool("in-place") // becomes out: the plan itself
	var err error
	if opts.query, err = discoverQuery(c.String("query"), c.String("expiring-within"), c.String("template"), now); err != nil {
		return opts, err
	}
	switch {
	case inPlace && opts.update == "":
		return opts, usageError{msg: "--in-place needs --update PLAN.csv", hint: "runner discover --update plan.csv --in-place"}
	case inPlace && opts.out != "":
		return opts, usageError{msg: "--in-place and --out both given", hint: "--in-place replaces the plan itself; --out writes the updated plan elsewhere"}
	case inPlace:
		opts.out = opts.update
	case opts.update != "" && opts.out == "":
		opts.out = updatedName(opts.update)
	case opts.update != "" && resolved(opts.out) == resolved(opts.update):
		return opts, usageError{msg: fmt.Sprintf("--out %s is the plan being updated", opts.out), hint: "use --in-place to replace it"}
	}
	if opts.out != "" && !strings.EqualFold(filepath.Ext(opts.out), ".csv") {
		return opts, usageError{msg: fmt.Sprintf("--out %s: a plan is a CSV file; its name must end in .csv", opts.out)}
	}
	return opts, nil
}

// discoverQuery builds the query from --query and the shorthands, ANDed.
// --query goes as written; keyfactor.And puts it in parentheses when it
// holds an OR, so AND cannot bind into it.
func discoverQuery(raw, expiringWithin, template string, now time.Time) (string, error) {
	var clauses []string
	raw = strings.TrimSpace(raw)
	if raw != "" {
		if strings.IndexFunc(raw, unicode.IsControl) >= 0 {
			return "", usageError{msg: fmt.Sprintf("--query %q holds a line break or another control character", raw), hint: "write the query on one line"}
		}
		clauses = append(clauses, raw)
	}
	if expiringWithin != "" {
		rb, err := plan.ParseRenewBefore(expiringWithin)
		if err != nil || rb.Duration <= 0 {
			return "", usageError{msg: fmt.Sprintf("--expiring-within %q: expected a duration such as 60d or 720h", expiringWithin)}
		}
		clauses = append(clauses, keyfactor.Clause("NotAfter", "-le", keyfactor.QueryTime(now.Add(rb.Duration))))
	}
	if template != "" {
		q, err := keyfactor.Quote(template)
		if err != nil {
			return "", usageError{msg: "--template: " + err.Error(), hint: "give the template's name as Command shows it; for a name the query language cannot carry, select with --query on another field"}
		}
		clauses = append(clauses, keyfactor.Clause("TemplateName", "-eq", q))
	}
	return keyfactor.And(clauses...), nil
}

// updatedName is where --update writes without --out: plan.csv becomes
// plan.updated.csv beside it.
func updatedName(path string) string {
	ext := filepath.Ext(path)
	return strings.TrimSuffix(path, ext) + ".updated" + ext
}

// existingPlan is the plan --update adds rows to.
type existingPlan struct {
	raw     []byte
	plan    *plan.Plan
	byID    map[int]*plan.Job
	byThumb map[string]*plan.Job
}

// readExistingPlan reads and validates the plan to update: rows can only
// be added to a plan that runner reads.
func readExistingPlan(path string) (*existingPlan, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, usageError{msg: fmt.Sprintf("--update: %v", err)}
	}
	p, err := plan.Parse(bytes.NewReader(raw), path, plan.Options{AllowPlainPasswords: true, AllowPastJobTime: true})
	if err != nil {
		return nil, err
	}
	e := &existingPlan{raw: raw, plan: p, byID: map[int]*plan.Job{}, byThumb: map[string]*plan.Job{}}
	for _, job := range p.Jobs {
		for _, r := range job.Rows {
			if r.CertificateID != 0 && e.byID[r.CertificateID] == nil {
				e.byID[r.CertificateID] = job
			}
			if r.Thumbprint != "" && e.byThumb[r.Thumbprint] == nil {
				e.byThumb[r.Thumbprint] = job
			}
		}
	}
	return e, nil
}

// hasColumn reports whether the plan has the column name (canonical).
func (e *existingPlan) hasColumn(name string) bool { return slices.Contains(e.plan.Columns, name) }

// jobs returns the plan's jobs of a certificate: the one naming its id and
// the one naming its thumbprint (one job when a row names both, nil for
// either the plan lacks).
func (e *existingPlan) jobs(id int, thumbprint string) []*plan.Job {
	var out []*plan.Job
	if j := e.byID[id]; j != nil {
		out = append(out, j)
	}
	if j := e.byThumb[thumbprint]; j != nil && !slices.Contains(out, j) {
		out = append(out, j)
	}
	return out
}

// hasStore reports whether one of jobs has a row for store.
func hasStore(jobs []*plan.Job, store string) bool {
	for _, j := range jobs {
		for _, r := range j.Rows {
			if r.StoreID == store {
				return true
			}
		}
	}
	return false
}

// jobSettings are the cells that must agree on every row of a certificate
// (plan.Job): a row added for a certificate already in the plan copies
// them from its first row.
var jobSettings = []string{"password", "job_time", "template", "certificate_authority", "renew_before"}

// openStateForUpdate opens the journal that knows runner's renewals, so
// that a certificate renewed since the plan was written is matched to the
// plan's rows for the certificate it replaced. A state file that does not
// exist is no error: nothing was renewed yet. The journal is locked until
// discover ends, so a run started meanwhile waits for it (--wait-lock).
func openStateForUpdate(ctx context.Context, command, path string, waitLock time.Duration) (*journal.Journal, error) {
	explicit := path != ""
	if !explicit {
		var err error
		if path, err = journal.DefaultPath(command); err != nil {
			return nil, usageError{msg: fmt.Sprintf("find the state directory: %v", err), hint: "set RUNNER_STATE_DIR or --state"}
		}
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if explicit {
			return nil, usageError{msg: fmt.Sprintf("--state %s: no such file", path), hint: "name the state file runner run uses, or leave --state out for the default"}
		}
		return nil, nil
	}
	return journal.Open(path, journal.Options{Command: command, WaitLock: waitLock, Done: ctx.Done()})
}

// discoverer writes one plan from Command's inventory.
type discoverer struct {
	client     *keyfactor.Client
	opts       discoverOptions
	existing   *existingPlan    // --update, else nil
	journal    *journal.Journal // --update with a state file, else nil
	start      time.Time
	collection int
	progress   *discoverProgress // nil off a terminal

	perms    keyfactor.Permissions
	stores   map[string]keyfactor.CertificateStore
	types    map[int]keyfactor.CertificateStoreType
	typesErr error

	w         *plan.Writer
	certs     int
	rows      int
	inPlan    int // --update: locations the plan already had
	odd       []keyfactor.RecordError
	passwords map[string]bool // env names already announced

	// What the comments at the end list, gathered as the certificates go
	// by; a line or two per certificate that has no row, never the
	// certificates themselves.
	noLocation   []string
	leftOut      []string
	manyAliases  []string
	storeNotes   []string
	noteForStore map[string]bool
	noAliasTypes []string
	noteForType  map[int]bool
}

// preflight reads what every row depends on: the permissions, the stores
// and the store types. A failure is a *runner.PreflightError, so the CLI
// hints by cause (unreachable, refused credentials, …).
func (d *discoverer) preflight(ctx context.Context) error {
	var err error
	if d.perms, err = d.client.Permissions(ctx); err != nil {
		return &runner.PreflightError{Err: fmt.Errorf("read the permissions of %s: %w", d.client.Identity(), err)}
	}
	stores, _, err := d.client.AllCertificateStores(ctx, "")
	if err != nil {
		return &runner.PreflightError{Err: fmt.Errorf("list certificate stores: %w", err)}
	}
	d.stores = make(map[string]keyfactor.CertificateStore, len(stores))
	for _, st := range stores {
		d.stores[st.Id] = st
	}
	// Store types only sharpen the plan (entry passwords, alias rules); a
	// Command that does not answer gets a plan without them and a warning.
	types, _, err := d.client.CertificateStoreTypes(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d.typesErr = err
		return nil
	}
	d.types = make(map[int]keyfactor.CertificateStoreType, len(types))
	for _, t := range types {
		d.types[t.StoreType] = t
	}
	return nil
}

// write writes the whole plan to w: the opening comments, a row per
// location as the pages come, and the closing comments.
func (d *discoverer) write(ctx context.Context, w io.Writer) error {
	var err error
	if d.existing != nil {
		d.w, err = plan.AppendTo(w, d.existing.raw, d.existing.plan.Path)
	} else {
		d.w, err = plan.NewWriter(w, discoverColumns)
	}
	if err != nil {
		return err
	}
	if err := d.w.Comment(d.opening()); err != nil {
		return err
	}
	if d.existing == nil {
		// The header comes next, before any per-certificate comment.
		if err := d.w.WriteHeader(); err != nil {
			return err
		}
	}
	q := keyfactor.CertificateQuery{
		QueryString: d.opts.query, ReturnLimit: discoverPageSize, IncludeLocations: true, IncludeExpired: d.opts.includeExpired,
		// By id, oldest first: a certificate imported while the pages are
		// read lands after them instead of shifting every later page.
		SortField: "Id", SortAscending: 0,
	}
	d.odd, err = d.client.AllCertificates(ctx, q, func(c *keyfactor.Certificate) error {
		d.certs++
		if err := d.certificate(ctx, c); err != nil {
			return discoverStopped{err}
		}
		d.progress.update(d.certs, d.rows)
		return nil
	})
	if err != nil {
		return d.listError(err)
	}
	if err := d.w.Comment(d.closing()); err != nil {
		return err
	}
	return d.w.Close()
}

// discoverStopped is an error of discover's own work on a certificate
// (writing the plan, a lookup it made), which stopped the listing.
type discoverStopped struct{ err error }

func (s discoverStopped) Error() string { return s.err.Error() }
func (s discoverStopped) Unwrap() error { return s.err }

// listError says why the certificates could not be read: a query Command
// refused is the operator's to fix (exit 2), anything else is Command's
// or the connection's (exit 3); discover's own errors are returned as
// they are.
func (d *discoverer) listError(err error) error {
	var s discoverStopped
	if errors.As(err, &s) {
		return s.err
	}
	var ae *keyfactor.APIError
	if errors.As(err, &ae) && ae.Endpoint == "/Certificates" && ae.Status == http.StatusBadRequest && d.opts.query != "" {
		return usageError{msg: fmt.Sprintf("Command refused the query %s: %v", d.opts.query, err),
			hint: `check --query: Field -op value clauses joined with AND or OR, strings in double quotes, e.g. IssuedCN -contains "corp"`}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &runner.PreflightError{Err: fmt.Errorf("read certificates from Command: %w", err)}
}

// opening is the comment that starts the plan (or, with --update, the
// block of added rows): what was asked, of which Command, when.
func (d *discoverer) opening() string {
	var b strings.Builder
	query := d.opts.query
	if query == "" {
		query = "none, every certificate"
	}
	scope := "active certificates only (expired and revoked ones are left out)"
	if d.opts.includeExpired {
		scope = "expired certificates included (revoked ones are left out)"
	}
	if d.existing != nil {
		b.WriteString("\nAdded by runner discover --update: the locations Command shows that the rows above lack.\n")
	} else {
		b.WriteString("Written by runner discover: one row per store that Command's inventory shows holding the certificate.\n")
	}
	fmt.Fprintf(&b, "Command: %s\n", d.client.BaseURL())
	fmt.Fprintf(&b, "Query: %s; %s\n", query, scope)
	if d.collection != 0 {
		fmt.Fprintf(&b, "Collection: %d (run runner with the same --collection-id)\n", d.collection)
	}
	fmt.Fprintf(&b, "Written: %s by runner %s\n", d.start.UTC().Format(time.RFC3339), version())
	if d.typesErr != nil {
		b.WriteString("Store types could not be read: no password cells were written and alias rules were not applied.\n")
	}
	if d.existing == nil {
		b.WriteString("Review it: each row replaces the entry under its alias in the store (overwrite true).\n" +
			"What was left out, and why, is listed at the end. Then check it with: runner plan PLAN.csv\n")
	}
	return b.String()
}

// closing is the comment at the end: what has no row, and why.
func (d *discoverer) closing() string {
	var b strings.Builder
	section := func(head string, lines []string) {
		if len(lines) == 0 {
			return
		}
		b.WriteString("\n" + head + "\n")
		for _, l := range lines {
			b.WriteString("  " + l + "\n")
		}
	}
	if d.existing != nil {
		section(fmt.Sprintf("In the plan, but Command shows %s in no store (its rows will be reported stale):", nounCount(len(d.noLocation), "this certificate", "these certificates")), d.noLocation)
	} else {
		section(fmt.Sprintf("Left out: %s that Command shows in no store (nothing to deploy to):", nounCount(len(d.noLocation), "1 certificate", "%d certificates")), d.noLocation)
	}
	section(fmt.Sprintf("Left out: %s this user cannot deploy to:", nounCount(len(d.leftOut), "1 location", "%d locations")), d.leftOut)
	section("In one store under more than one alias: the row replaces the entry under the first alias only:", d.manyAliases)
	section("Stores whose jobs cannot run yet (their rows fail until this is fixed in Command):", d.storeNotes)
	section("Store types that take no alias (Command names the entry itself): their rows' alias cells are empty:", d.noAliasTypes)
	if len(d.odd) > 0 {
		var lines []string
		for _, o := range d.odd {
			lines = append(lines, o.Error())
		}
		section(fmt.Sprintf("Left out: %s Command sent that could not be read:", nounCount(len(d.odd), "1 certificate record", "%d certificate records")), lines)
	}
	if d.existing != nil {
		fmt.Fprintf(&b, "\nSummary: %s read, %s added (%s already in the plan)", nounCount(d.certs, "1 certificate", "%d certificates"),
			nounCount(d.rows, "1 row", "%d rows"), nounCount(d.inPlan, "1 location", "%d locations"))
	} else {
		fmt.Fprintf(&b, "\nSummary: %s read, %s written", nounCount(d.certs, "1 certificate", "%d certificates"), nounCount(d.rows, "1 row", "%d rows"))
	}
	b.WriteString(".\n")
	return b.String()
}

// nounCount formats n with the singular text for 1 and the plural (a
// format with %d) otherwise.
func nounCount(n int, one, many string) string {
	if n == 1 {
		return one
	}
	if strings.Contains(many, "%d") {
		return fmt.Sprintf(many, n)
	}
	return many
}

// discoverTarget is one store a certificate is in, with the aliases it
// has there.
type discoverTarget struct {
	store   keyfactor.CertificateStore
	aliases []string
}

// certificate writes the rows of one certificate: one per store it is in
// and that the user can schedule on.
func (d *discoverer) certificate(ctx context.Context, c *keyfactor.Certificate) error {
	if len(c.Locations) == 0 {
		d.noStore(c)
		return nil
	}
	var jobs []*plan.Job
	root := c.Id
	if d.existing != nil {
		var err error
		if root, jobs, err = d.planJobs(ctx, c); err != nil {
			return err
		}
	}
	var targets []*discoverTarget
	byStore := map[string]*discoverTarget{}
	for _, l := range c.Locations {
		if t := byStore[l.CertStoreId]; t != nil {
			t.aliases = append(t.aliases, l.Alias)
			continue
		}
		if hasStore(jobs, l.CertStoreId) {
			// --update: the plan has it already, whatever discover would
			// have made of it.
			d.inPlan++
			byStore[l.CertStoreId] = &discoverTarget{}
			continue
		}
		st, visible := d.stores[l.CertStoreId]
		switch {
		case !visible:
			d.leftOut = append(d.leftOut, fmt.Sprintf("certificate %d in store %s (%s %s), alias %s: the store is not visible to %s",
				c.Id, l.CertStoreId, l.StoreMachine, l.StorePath, shownAlias(l.Alias), d.client.Identity()))
			continue
		case !d.perms.Has(keyfactor.PermStoresSchedule, st.ContainerId):
			d.leftOut = append(d.leftOut, fmt.Sprintf("certificate %d in store %s (%s), alias %s: %s lacks %s",
				c.Id, st.Id, storeLabel(st), shownAlias(l.Alias), d.client.Identity(), scheduleScope(st)))
			continue
		}
		t := &discoverTarget{store: st, aliases: []string{l.Alias}}
		byStore[l.CertStoreId] = t
		targets = append(targets, t)
	}
	password := d.passwordVar(targets)
	for _, t := range targets {
		if len(t.aliases) > 1 {
			d.manyAliases = append(d.manyAliases, fmt.Sprintf("certificate %d in store %s (%s): aliases %s; the row names %s",
				c.Id, t.store.Id, storeLabel(t.store), strings.Join(t.aliases, ", "), shownAlias(t.aliases[0])))
		}
		d.noteStore(t.store)
		alias := t.aliases[0]
		if typ, ok := d.types[t.store.CertStoreType]; ok && typ.CustomAliasAllowed == keyfactor.AliasForbidden {
			d.noteNoAliasType(typ)
			alias = ""
		}
		if d.existing != nil {
			if err := d.addRow(c, root, jobs, t, alias, password, targets); err != nil {
				return err
			}
			continue
		}
		if err := d.announcePassword(password, targets); err != nil {
			return err
		}
		if err := d.w.WriteRow([]string{strconv.Itoa(c.Id), c.Thumbprint, t.store.Id, alias, "true", password}); err != nil {
			return err
		}
		d.rows++
	}
	return nil
}

// noStore records a certificate Command shows in no store. With --update
// only one the plan names matters, and not one that runner renewed (its
// successor holds the stores now).
func (d *discoverer) noStore(c *keyfactor.Certificate) {
	line := fmt.Sprintf("certificate %d (%s), thumbprint %s, expires %s", c.Id, c.IssuedDN, c.Thumbprint, c.NotAfter.UTC().Format("2006-01-02"))
	if d.existing == nil {
		d.noLocation = append(d.noLocation, line)
		return
	}
	if len(d.existing.jobs(c.Id, c.Thumbprint)) == 0 || d.superseded(c.Id) {
		return
	}
	d.noLocation = append(d.noLocation, line)
}

// superseded reports whether the journal shows a renewal that replaced
// certificate id.
func (d *discoverer) superseded(id int) bool {
	if d.journal == nil {
		return false
	}
	lin, ok, err := d.journal.Lineage(id)
	if err != nil || !ok {
		return false
	}
	latest, ok := lin.Latest()
	return ok && latest.NewCertificateID != 0 && latest.NewCertificateID != id
}

// planJobs finds the plan's jobs of c: by its id and thumbprint, or, for a
// certificate runner issued in a renewal, by the certificate the renewal
// started from (the journal's lineage root), whose id or thumbprint the
// plan names. root is the id a new row names.
func (d *discoverer) planJobs(ctx context.Context, c *keyfactor.Certificate) (int, []*plan.Job, error) {
	if jobs := d.existing.jobs(c.Id, c.Thumbprint); len(jobs) > 0 {
		return c.Id, jobs, nil
	}
	if d.journal == nil {
		return c.Id, nil, nil
	}
	root, ok := d.journal.ClaimedBy(c.Id)
	if !ok || root == c.Id {
		return c.Id, nil, nil
	}
	if jobs := d.existing.jobs(root, ""); len(jobs) > 0 {
		return root, jobs, nil
	}
	if !d.existing.hasColumn("thumbprint") {
		return c.Id, nil, nil
	}
	// The plan may name the root by thumbprint only: one read finds it.
	rc, err := d.client.GetCertificate(ctx, root, false)
	var ae *keyfactor.APIError
	switch {
	case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
		return c.Id, nil, nil
	case err != nil:
		return 0, nil, &runner.PreflightError{Err: fmt.Errorf("read certificate %d, which certificate %d renewed: %w", root, c.Id, err)}
	}
	if jobs := d.existing.jobs(0, rc.Thumbprint); len(jobs) > 0 {
		return root, jobs, nil
	}
	return c.Id, nil, nil
}

// addRow adds, with --update, the row of a location the plan lacks, in
// the plan's own columns. A certificate the plan already names keeps its
// settings (they must agree on every row of it).
func (d *discoverer) addRow(c *keyfactor.Certificate, root int, jobs []*plan.Job, t *discoverTarget, alias, password string, targets []*discoverTarget) error {
	cells := map[string]string{"store_id": t.store.Id, "alias": alias, "overwrite": "true"}
	if len(jobs) > 0 {
		job := jobs[0]
		if job.Password.Kind == plan.SecretLiteral {
			d.leftOut = append(d.leftOut, fmt.Sprintf("certificate %d in store %s (%s), alias %s: the plan's rows of this certificate hold a literal password, which runner never writes; add this row by hand",
				c.Id, t.store.Id, storeLabel(t.store), shownAlias(alias)))
			return nil
		}
		first := job.Rows[0]
		for _, name := range jobSettings {
			if i := slices.Index(d.existing.plan.Columns, name); i >= 0 {
				cells[name] = first.Values[i]
			}
		}
		cells["certificate_id"], cells["thumbprint"] = "", job.Thumbprint
		if job.CertificateID != 0 {
			cells["certificate_id"] = strconv.Itoa(job.CertificateID)
		}
	} else {
		cells["certificate_id"], cells["thumbprint"], cells["password"] = strconv.Itoa(root), c.Thumbprint, password
		if password != "" && !d.existing.hasColumn("password") {
			d.leftOut = append(d.leftOut, fmt.Sprintf("certificate %d in store %s (%s), alias %s: needs an entry password (%s), but the plan has no password column",
				c.Id, t.store.Id, storeLabel(t.store), shownAlias(alias), password))
			return nil
		}
		if err := d.announcePassword(password, targets); err != nil {
			return err
		}
	}
	// Only the plan's columns: the plan's author chose which identify a
	// certificate (certificate_id, thumbprint or both) and which settings
	// it has; a password it needs was checked above.
	for name := range cells {
		if !d.existing.hasColumn(name) {
			delete(cells, name)
		}
	}
	if err := d.w.WriteNamed(cells); err != nil {
		return err
	}
	d.rows++
	return nil
}

// passwordVar returns the password cell of a certificate's rows: env:NAME
// when any of its stores' types takes an entry password, else "". Deploy
// sends one password for all of a certificate's stores, and the plan
// wants the same cell on each of its rows, so NAME is derived from every
// such store type's short name: RUNNER_ENTRY_PASSWORD_PEM, or
// RUNNER_ENTRY_PASSWORD_JKS_PEM for a certificate in both.
func (d *discoverer) passwordVar(targets []*discoverTarget) string {
	var names []string
	for _, t := range targets {
		typ, ok := d.types[t.store.CertStoreType]
		if !ok || !typ.EntryPasswordSupported {
			continue
		}
		if n := envName(typ); !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return ""
	}
	sort.Strings(names)
	return "env:" + entryPasswordPrefix + strings.Join(names, "_")
}

// envName makes a store type's short name fit an environment variable
// name: upper case, every other character than A-Z and 0-9 an underscore.
func envName(t keyfactor.CertificateStoreType) string {
	name := t.ShortName
	if name == "" {
		name = "TYPE" + strconv.Itoa(t.StoreType)
	}
	return strings.Map(func(r rune) rune {
		r = unicode.ToUpper(r)
		if r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, name)
}

// announcePassword writes, before the first row that names a password
// variable, the comment that tells the operator to set it.
func (d *discoverer) announcePassword(password string, targets []*discoverTarget) error {
	if password == "" || d.passwords[password] {
		return nil
	}
	if d.passwords == nil {
		d.passwords = map[string]bool{}
	}
	d.passwords[password] = true
	var types []string
	for _, t := range targets {
		if typ, ok := d.types[t.store.CertStoreType]; ok && typ.EntryPasswordSupported && !slices.Contains(types, typ.ShortName) {
			types = append(types, typ.ShortName)
		}
	}
	sort.Strings(types)
	return d.w.Comment(fmt.Sprintf("Set %s to the entry password for %s stores before runner run: rows with password %s take it.",
		strings.TrimPrefix(password, "env:"), strings.Join(types, " and "), password))
}

// noteStore remembers, once per store, why its jobs cannot run.
func (d *discoverer) noteStore(st keyfactor.CertificateStore) {
	var problem string
	switch {
	case !st.Approved:
		problem = "not approved: approve it under Certificate Stores"
	case !st.AgentAssigned:
		problem = "no orchestrator assigned"
	default:
		return
	}
	if d.noteForStore[st.Id] {
		return
	}
	if d.noteForStore == nil {
		d.noteForStore = map[string]bool{}
	}
	d.noteForStore[st.Id] = true
	d.storeNotes = append(d.storeNotes, fmt.Sprintf("store %s (%s): %s", st.Id, storeLabel(st), problem))
}

func (d *discoverer) noteNoAliasType(t keyfactor.CertificateStoreType) {
	if d.noteForType[t.StoreType] {
		return
	}
	if d.noteForType == nil {
		d.noteForType = map[int]bool{}
	}
	d.noteForType[t.StoreType] = true
	d.noAliasTypes = append(d.noAliasTypes, fmt.Sprintf("%s (store type %d)", t.ShortName, t.StoreType))
}

func storeLabel(st keyfactor.CertificateStore) string {
	label := strings.TrimSpace(st.ClientMachine + " " + st.Storepath)
	if st.ContainerId != nil {
		name := st.ContainerName
		if name == "" {
			name = strconv.Itoa(*st.ContainerId)
		} else {
			name = strconv.Itoa(*st.ContainerId) + " " + name
		}
		label += ", container " + name
	}
	return label
}

func scheduleScope(st keyfactor.CertificateStore) string {
	if st.ContainerId == nil {
		return keyfactor.PermStoresSchedule + " (the store is in no container)"
	}
	return fmt.Sprintf("%s for container %d", keyfactor.PermStoresSchedule, *st.ContainerId)
}

func shownAlias(a string) string {
	if a == "" {
		return "(none)"
	}
	return a
}

// summary tells the operator on stderr what was written to name ("" when
// --update had nothing to add) and what needs their attention.
func (d *discoverer) summary(w io.Writer, name string) {
	verb := "written"
	if d.existing != nil {
		verb = "added"
	}
	switch {
	case name == "":
		fmt.Fprintf(w, "runner discover: %s read, nothing to add: %s has all %s; no file written\n",
			nounCount(d.certs, "1 certificate", "%d certificates"), d.existing.plan.Path, nounCount(d.inPlan, "1 location", "%d locations"))
	case d.existing != nil:
		fmt.Fprintf(w, "runner discover: %s read, %s %s to %s (%s already in %s)\n", nounCount(d.certs, "1 certificate", "%d certificates"),
			nounCount(d.rows, "1 row", "%d rows"), verb, name, nounCount(d.inPlan, "1 location", "%d locations"), d.existing.plan.Path)
	default:
		fmt.Fprintf(w, "runner discover: %s read, %s %s to %s\n", nounCount(d.certs, "1 certificate", "%d certificates"), nounCount(d.rows, "1 row", "%d rows"), verb, name)
	}
	var left []string
	if n := len(d.noLocation); n > 0 {
		if d.existing != nil {
			left = append(left, nounCount(n, "1 certificate of the plan", "%d certificates of the plan")+" in no store")
		} else {
			left = append(left, nounCount(n, "1 certificate", "%d certificates")+" without a location")
		}
	}
	if n := len(d.leftOut); n > 0 {
		left = append(left, nounCount(n, "1 location", "%d locations")+" the user cannot deploy to")
	}
	if n := len(d.odd); n > 0 {
		left = append(left, nounCount(n, "1 unreadable certificate record", "%d unreadable certificate records"))
	}
	if len(left) > 0 {
		fmt.Fprintf(w, "runner discover: %s: listed at the end of the plan\n", strings.Join(left, ", "))
	}
	var vars []string
	for v := range d.passwords {
		vars = append(vars, strings.TrimPrefix(v, "env:"))
	}
	sort.Strings(vars)
	if len(vars) > 0 {
		fmt.Fprintf(w, "runner discover: before runner run, set the entry passwords in %s\n", strings.Join(vars, ", "))
	}
}

// discoverProgress is the progress line on a terminal, redrawn at most
// every so often.
type discoverProgress struct {
	w     io.Writer
	now   func() time.Time
	every time.Duration
	next  time.Time
	drawn bool
}

func (p *discoverProgress) update(certs, rows int) {
	if p == nil {
		return
	}
	t := p.now()
	if t.Before(p.next) {
		return
	}
	p.next = t.Add(p.every)
	fmt.Fprintf(p.w, "\r\x1b[Krunner discover: %d certificates read, %d rows", certs, rows)
	p.drawn = true
}

// clear takes the line off the terminal; the next update draws it again.
func (p *discoverProgress) clear() {
	if p == nil || !p.drawn {
		return
	}
	fmt.Fprint(p.w, "\r\x1b[K")
	p.drawn = false
	p.next = time.Time{}
}

// planOutput is where the plan goes: stdout, or a temporary file beside
// the target that replaces it only when the plan is complete, so a failed
// or interrupted discover never leaves half a plan.
type planOutput struct {
	w    io.Writer
	name string // for the summary
	file *os.File
	path string
	mode os.FileMode
	done bool
}

func openPlanOutput(opts discoverOptions, stdout io.Writer) (*planOutput, error) {
	if opts.out == "" {
		return &planOutput{w: stdout, name: "stdout"}, nil
	}
	mode := os.FileMode(0o644)
	if st, err := os.Stat(opts.out); err == nil {
		mode = st.Mode().Perm()
	} else if opts.update != "" {
		if st, err := os.Stat(opts.update); err == nil {
			mode = st.Mode().Perm()
		}
	}
	dir, base := filepath.Split(opts.out)
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return nil, usageError{msg: fmt.Sprintf("--out %s: %v", opts.out, err)}
	}
	return &planOutput{w: f, name: opts.out, file: f, path: opts.out, mode: mode}, nil
}

// commit puts the finished file in place.
func (o *planOutput) commit() error {
	if o.file == nil {
		return nil
	}
	err := o.file.Chmod(o.mode)
	if err == nil {
		err = o.file.Sync()
	}
	if cerr := o.file.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(o.file.Name(), o.path)
	}
	if err != nil {
		return fmt.Errorf("write plan %s: %w", o.path, err)
	}
	o.done = true
	return nil
}

// abort removes the temporary file of a plan that was not committed.
func (o *planOutput) abort() {
	if o.file == nil || o.done {
		return
	}
	o.file.Close()
	os.Remove(o.file.Name())
}
