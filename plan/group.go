package plan

import (
	"fmt"
	"strconv"
)

// grouper gathers valid rows into jobs and checks that rows of one job agree.
type grouper struct {
	jobs    []*Job
	byID    map[int]*Job
	byThumb map[string]*Job
	// stores indexes the stores of jobs with many rows; smaller jobs are
	// searched row by row, which costs less memory than a map entry per row.
	stores  map[*Job]map[string]int
	jobSlab []Job
}

// manyStores is the job size from which a job's stores are indexed.
const manyStores = 16

func newGrouper() *grouper {
	return &grouper{byID: map[int]*Job{}, byThumb: map[string]*Job{}, stores: map[*Job]map[string]int{}}
}

// groupErr records a problem with the cell of known column k of the row
// being added.
type groupErr func(k int, problem, expected string)

// add puts row into the job of its certificate, or reports why it cannot
// be; a row with a problem changes no job. Rows naming a certificate by id
// and rows naming it by thumbprint join the same job when a row gives both,
// so a certificate is never renewed twice because it was spelled two ways.
func (g *grouper) add(row *Row, report groupErr) {
	var byID, byThumb *Job
	if row.CertificateID != 0 {
		byID = g.byID[row.CertificateID]
	}
	if row.Thumbprint != "" {
		byThumb = g.byThumb[row.Thumbprint]
	}
	if byID != nil && byThumb != nil && byID != byThumb {
		report(iThumbprint, fmt.Sprintf("%s names the certificate of line %d, not certificate_id %d of line %d",
			row.Thumbprint, byThumb.Rows[0].Line, row.CertificateID, byID.Rows[0].Line),
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
				row.CertificateID, job.CertificateID, lineOf(job, iCertificateID), row.Thumbprint),
				"one certificate_id per thumbprint")
			return
		}
		if row.Thumbprint != "" && job.Thumbprint != "" && job.Thumbprint != row.Thumbprint {
			report(iThumbprint, fmt.Sprintf("%s disagrees with %s on line %d for certificate id:%d",
				row.Thumbprint, job.Thumbprint, lineOf(job, iThumbprint), row.CertificateID),
				"one thumbprint per certificate_id")
			return
		}
		if !agree(job, row, report) {
			return
		}
		if line, ok := g.storeLine(job, row.StoreID); ok {
			report(iStoreID, fmt.Sprintf("duplicate of line %d: certificate %s already goes to store %s",
				line, job.Key, row.StoreID), "each certificate and store pair on one row only")
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
		}
		g.jobs = append(g.jobs, job)
	}
	if row.CertificateID != 0 && job.CertificateID == 0 {
		job.CertificateID = row.CertificateID
		g.byID[row.CertificateID] = job
		job.Key = "id:" + strconv.Itoa(job.CertificateID)
	}
	if row.Thumbprint != "" && job.Thumbprint == "" {
		job.Thumbprint = row.Thumbprint
		g.byThumb[row.Thumbprint] = job
		if job.CertificateID == 0 {
			job.Key = "thumbprint:" + job.Thumbprint
		}
	}
	job.Rows = append(job.Rows, row)
	if m := g.stores[job]; m != nil {
		m[row.StoreID] = row.Line
	} else if len(job.Rows) == manyStores {
		m := make(map[string]int, 2*manyStores)
		for _, r := range job.Rows {
			m[r.StoreID] = r.Line
		}
		g.stores[job] = m
	}
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

// storeLine returns the line of job's row for store, if it has one.
func (g *grouper) storeLine(job *Job, store string) (int, bool) {
	if m := g.stores[job]; m != nil {
		line, ok := m[store]
		return line, ok
	}
	for _, r := range job.Rows {
		if r.StoreID == store {
			return r.Line, true
		}
	}
	return 0, false
}

// lineOf returns the first line of job that set column k (id or thumbprint).
func lineOf(job *Job, k int) int {
	for _, r := range job.Rows {
		if k == iCertificateID && r.CertificateID != 0 || k == iThumbprint && r.Thumbprint != "" {
			return r.Line
		}
	}
	return 0
}

// agree checks the per-certificate settings of row against its job's first
// row, reports each column that differs, and says whether all agree.
func agree(job *Job, row *Row, report groupErr) bool {
	first := job.Rows[0]
	ok := true
	differ := func(k int, mine, theirs string) {
		ok = false
		report(k, fmt.Sprintf("%s disagrees with %s on line %d", mine, theirs, first.Line),
			fmt.Sprintf("the same %s on every row of certificate %s", Columns[k], job.Key))
	}
	if row.Password != job.Password {
		if row.Password.Kind == SecretLiteral && job.Password.Kind == SecretLiteral {
			ok = false
			report(iPassword, fmt.Sprintf("literal password differs from the literal password on line %d", first.Line),
				fmt.Sprintf("the same password on every row of certificate %s", job.Key))
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
