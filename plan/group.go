package plan

import (
	"fmt"
	"strconv"
	"strings"
)

// grouper gathers valid rows into jobs and checks that rows of one job
// agree. It runs in one of two modes: keeping rows (Load, Parse), where each
// Job gets its Rows, or counting them (Validate), where no row and no part
// of a record is kept, so that memory grows with the certificates only.
type grouper struct {
	keep    bool
	jobs    []*Job
	byID    map[int]*Job
	byThumb map[string]*Job
	last    *Job // the job of the row added last
	jobSlab []Job

	// When keeping rows, a job's stores are found among its Rows; when
	// counting, in storeLists (by Job.index), by the store's 16 bytes
	// rather than its text. Either way a job with manyStores stores gets a
	// map of them in stores (a map entry per row costs more memory, and
	// more cache misses, than a short search).
	storeLists [][]storeAt
	stores     map[*Job]map[[16]byte]int32
}

// storeAt is one store of a job and the line that names it; it has no
// pointers, so the garbage collector need not scan it.
type storeAt struct {
	store [16]byte
	line  int32
}

// manyStores is the job size from which a job's stores are indexed.
const manyStores = 16

// newGrouper returns a grouper for about jobs jobs, with a map by id and one
// by thumbprint when the plan has those columns.
func newGrouper(keep bool, jobs int, ids, thumbprints bool) *grouper {
	g := &grouper{keep: keep, byID: map[int]*Job{}, byThumb: map[string]*Job{}, stores: map[*Job]map[[16]byte]int32{}}
	if ids {
		g.byID = make(map[int]*Job, jobs)
	}
	if thumbprints {
		g.byThumb = make(map[string]*Job, jobs)
	}
	if !keep {
		g.storeLists = make([][]storeAt, 0, jobs)
	}
	return g
}

// groupErr records a problem with the cell of known column k of the row
// being added.
type groupErr func(k int, problem, expected string)

// add puts row into the job of its certificate, or reports why it cannot
// be; a row with a problem changes no job. Rows naming a certificate by id
// and rows naming it by thumbprint join the same job when a row gives both,
// so a certificate is never renewed twice because it was spelled two ways.
func (g *grouper) add(row *Row, store [16]byte, report groupErr) {
	// Plans list a certificate's rows together, so the job of the row
	// before is tried first; the maps agree with it, since each id and
	// thumbprint belongs to one job.
	var byID, byThumb *Job
	if row.CertificateID != 0 {
		if g.last != nil && g.last.CertificateID == row.CertificateID {
			byID = g.last
		} else {
			byID = g.byID[row.CertificateID]
		}
	}
	if row.Thumbprint != "" {
		if g.last != nil && g.last.Thumbprint == row.Thumbprint {
			byThumb = g.last
		} else {
			byThumb = g.byThumb[row.Thumbprint]
		}
	}
	if byID != nil && byThumb != nil && byID != byThumb {
		report(iThumbprint, fmt.Sprintf("%s names the certificate of line %d, not certificate_id %d of line %d",
			row.Thumbprint, byThumb.firstLine, row.CertificateID, byID.firstLine),
			"a certificate_id and thumbprint of the same certificate")
		return
	}
	job := byID
	if job == nil {
		job = byThumb
	}
	if job != nil {
		if row.CertificateID != 0 && job.CertificateID != 0 && job.CertificateID != row.CertificateID {
			report(iCertificateID, fmt.Sprintf("%d disagrees with %d on line %d for thumbprint %s",
				row.CertificateID, job.CertificateID, job.idLine, row.Thumbprint),
				"one certificate_id per thumbprint")
			return
		}
		if row.Thumbprint != "" && job.Thumbprint != "" && job.Thumbprint != row.Thumbprint {
			report(iThumbprint, fmt.Sprintf("%s disagrees with %s on line %d for certificate id:%d",
				row.Thumbprint, job.Thumbprint, job.thumbLine, row.CertificateID),
				"one thumbprint per certificate_id")
			return
		}
		if !agree(job, row, report) {
			return
		}
		if line, ok := g.storeLine(job, row.StoreID, store); ok {
			report(iStoreID, fmt.Sprintf("duplicate of line %d: certificate %s already goes to store %s",
				line, keyOf(job), row.StoreID), "each certificate and store pair on one row only")
			return
		}
	} else {
		job = g.newJob()
		*job = Job{
			Password:             row.Password,
			JobTime:              row.JobTime,
			Template:             row.Template,
			CertificateAuthority: row.CertificateAuthority,
			RenewBefore:          row.RenewBefore,
			firstLine:            int32(row.Line),
			index:                int32(len(g.jobs)),
		}
		if !g.keep {
			// Substrings would hold the whole record.
			job.Password.Ref = strings.Clone(job.Password.Ref)
			job.Template = strings.Clone(job.Template)
			job.CertificateAuthority = strings.Clone(job.CertificateAuthority)
		}
		g.jobs = append(g.jobs, job)
	}
	if row.CertificateID != 0 && job.CertificateID == 0 {
		job.CertificateID = row.CertificateID
		job.idLine = int32(row.Line)
		g.byID[row.CertificateID] = job
	}
	if row.Thumbprint != "" && job.Thumbprint == "" {
		job.Thumbprint = row.Thumbprint
		if !g.keep {
			job.Thumbprint = strings.Clone(job.Thumbprint)
		}
		job.thumbLine = int32(row.Line)
		g.byThumb[job.Thumbprint] = job
	}
	g.last = job
	g.addStore(job, row, store)
}

// storeLine returns the line of job's row for store (its text and its
// bytes), if it has one.
func (g *grouper) storeLine(job *Job, store string, key [16]byte) (int, bool) {
	if m := g.stores[job]; m != nil {
		line, ok := m[key]
		return int(line), ok
	}
	if g.keep {
		for _, r := range job.Rows {
			if r.StoreID == store {
				return r.Line, true
			}
		}
		return 0, false
	}
	for _, s := range g.storeLists[job.index] {
		if s.store == key {
			return int(s.line), true
		}
	}
	return 0, false
}

// addStore records row as job's row for its store, whose bytes are key.
func (g *grouper) addStore(job *Job, row *Row, key [16]byte) {
	if g.keep {
		job.Rows = append(job.Rows, row)
		if len(job.Rows) < manyStores {
			return // no map yet: one is made at manyStores rows
		}
	}
	line := int32(row.Line)
	if m := g.stores[job]; m != nil {
		m[key] = line
		return
	}
	n := len(job.Rows)
	if !g.keep {
		if int(job.index) == len(g.storeLists) {
			g.storeLists = append(g.storeLists, nil)
		}
		list := g.storeLists[job.index]
		if list == nil {
			list = make([]storeAt, 0, 2) // most certificates are in a store or two
		}
		g.storeLists[job.index] = append(list, storeAt{key, line})
		n = len(g.storeLists[job.index])
	}
	if n < manyStores {
		return
	}
	m := make(map[[16]byte]int32, 2*manyStores)
	if g.keep {
		for _, r := range job.Rows {
			m[guidBytes(r.StoreID)] = int32(r.Line)
		}
	} else {
		for _, s := range g.storeLists[job.index] {
			m[s.store] = s.line
		}
		g.storeLists[job.index] = nil
	}
	g.stores[job] = m
}

// guidBytes returns the 16 bytes of a GUID as parseGUID returns it.
func guidBytes(s string) [16]byte {
	_, b, _ := parseGUID(s)
	return b
}

// keyOf returns what Job.Key will be: "id:1234" when any row gives the
// certificate id, else "thumbprint:<40 hex digits>".
func keyOf(job *Job) string {
	if job.CertificateID != 0 {
		return "id:" + strconv.Itoa(job.CertificateID)
	}
	return "thumbprint:" + job.Thumbprint
}

// finish sets every Job.Key, all in one string so that a plan of 100,000
// certificates does not cost 100,000 small allocations.
func (g *grouper) finish() []*Job {
	size := 0
	for _, job := range g.jobs {
		if job.CertificateID != 0 {
			size += len("id:") + digits(job.CertificateID)
		} else {
			size += len("thumbprint:") + len(job.Thumbprint)
		}
	}
	buf := make([]byte, 0, size)
	ends := make([]int, len(g.jobs))
	for i, job := range g.jobs {
		if job.CertificateID != 0 {
			buf = strconv.AppendInt(append(buf, "id:"...), int64(job.CertificateID), 10)
		} else {
			buf = append(append(buf, "thumbprint:"...), job.Thumbprint...)
		}
		ends[i] = len(buf)
	}
	keys := string(buf)
	start := 0
	for i, job := range g.jobs {
		job.Key = keys[start:ends[i]]
		start = ends[i]
	}
	return g.jobs
}

func digits(n int) int {
	d := 1
	for ; n >= 10; n /= 10 {
		d++
	}
	return d
}

// newJob returns a Job from the current block; jobs are allocated in blocks
// for memory.
func (g *grouper) newJob() *Job {
	if len(g.jobSlab) == 0 {
		g.jobSlab = make([]Job, 256)
	}
	j := &g.jobSlab[0]
	g.jobSlab = g.jobSlab[1:]
	return j
}

// agree checks the per-certificate settings of row against its job's first
// row, reports each column that differs, and says whether all agree.
func agree(job *Job, row *Row, report groupErr) bool {
	ok := true
	differ := func(k int, mine, theirs string) {
		ok = false
		report(k, fmt.Sprintf("%s disagrees with %s on line %d", mine, theirs, job.firstLine),
			fmt.Sprintf("the same %s on every row of certificate %s", Columns[k], keyOf(job)))
	}
	if row.Password != job.Password {
		if row.Password.Kind == SecretLiteral && job.Password.Kind == SecretLiteral {
			ok = false
			report(iPassword, fmt.Sprintf("literal password differs from the literal password on line %d", job.firstLine),
				fmt.Sprintf("the same password on every row of certificate %s", keyOf(job)))
		} else {
			differ(iPassword, shown(row.Password.String()), shown(job.Password.String()))
		}
	}
	if !row.JobTime.Equal(job.JobTime) {
		differ(iJobTime, shown(formatTime(row.JobTime)), shown(formatTime(job.JobTime)))
	}
	if row.Template != job.Template {
		differ(iTemplate, shown(row.Template), shown(job.Template))
	}
	if row.CertificateAuthority != job.CertificateAuthority {
		differ(iCertificateAuthority, shown(row.CertificateAuthority), shown(job.CertificateAuthority))
	}
	if row.RenewBefore != job.RenewBefore {
		differ(iRenewBefore, shown(row.RenewBefore.String()), shown(job.RenewBefore.String()))
	}
	return ok
}
