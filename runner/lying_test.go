package runner_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"runner/keyfactor"
	"runner/report"
	"runner/runner"
)

// Answers that lie (issue 8 §3): each is reported in the rows, never
// trusted.

// lyingDeploy edits Command's deploy answers.
type lyingDeploy struct {
	runner.Client
	edit func(*keyfactor.DeployResponse)
}

func (c lyingDeploy) Deploy(ctx context.Context, req keyfactor.DeployRequest) (*keyfactor.DeployResponse, error) {
	resp, err := c.Client.Deploy(ctx, req)
	if err == nil {
		c.edit(resp)
	}
	return resp, err
}

func TestDeployAnswersThatLie(t *testing.T) {
	const stranger = "99999999-9999-4999-8999-999999999999"
	w := newWorld(t, planText(row(1001, storeA), row(1001, storeB)))
	w.answersEdited = true
	rep, err := w.runWith(context.Background(), lyingDeploy{Client: w.client, edit: func(r *keyfactor.DeployResponse) {
		// B is named in both lists; a store nobody asked for is named too.
		r.FailedStores = append(r.FailedStores, storeB)
		r.SuccessfulStores = append(r.SuccessfulStores, stranger)
	}})
	if err != nil {
		t.Fatal(err)
	}
	wantRow(t, rep, 2, report.Succeeded, report.StageDeploy, "job created")
	wantRow(t, rep, 3, report.Failed, report.StageDeploy, "in both SuccessfulStores and FailedStores")
	for _, r := range rep.Rows {
		if !strings.Contains(strings.Join(r.Warnings, " "), "named store "+stranger+", which was not asked for; ignored") {
			t.Errorf("line %d lacks the warning about the stranger store: %q", r.Line, r.Warnings)
		}
	}
}

// lyingRenew answers Renew with a 200 that holds no ids, after Command
// did renew: the outcome is unknown, so it is searched for, not trusted.
type lyingRenew struct{ runner.Client }

func (c lyingRenew) Renew(ctx context.Context, req keyfactor.RenewalRequest) (*keyfactor.RenewalResponse, error) {
	resp, err := c.Client.Renew(ctx, req)
	if err == nil {
		resp.KeyfactorId, resp.KeyfactorRequestId = 0, 0
	}
	return resp, err
}

func TestRenewAnswerWithoutIdsIsSearchedFor(t *testing.T) {
	w := newWorld(t, planText(row(1001, storeA)))
	rep, err := w.runWith(context.Background(), lyingRenew{w.client})
	if err != nil {
		t.Fatal(err)
	}
	r := wantRow(t, rep, 2, report.Succeeded, report.StageDeploy, "job created")
	if l := w.sim.Ledger(); len(l.Renewals) != 1 || r.NewCertificateID != l.Renewals[0].NewCertificateId {
		t.Errorf("row names %d, the ledger's only renewal issued %+v", r.NewCertificateID, l.Renewals)
	}
}

// expiredRenewal answers every read of a certificate other than old (the
// one the run starts from) with a NotAfter already past.
type expiredRenewal struct {
	runner.Client
	old      int
	notAfter time.Time
}

func (c expiredRenewal) GetCertificate(ctx context.Context, id int, includeLocations bool) (*keyfactor.Certificate, error) {
	cert, err := c.Client.GetCertificate(ctx, id, includeLocations)
	if err == nil && id != c.old {
		edited := *cert
		edited.NotAfter = c.notAfter
		return &edited, nil
	}
	return cert, err
}

// A new certificate that Command shows already expired is seen in its
// store, and its row says Command reports it expired.
func TestExpiredNewCertificateIsAWarning(t *testing.T) {
	w := newWorld(t, planText(row(1001, storeA)))
	w.cfg.Verify, w.cfg.VerifyInterval = true, 10*time.Millisecond
	notAfter := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	rep, err := w.runWith(context.Background(), expiredRenewal{Client: w.client, old: 1001, notAfter: notAfter})
	if err != nil {
		t.Fatal(err)
	}
	r := wantRow(t, rep, 2, report.Succeeded, report.StageVerify, "seen in store")
	want := fmt.Sprintf("Command reports the new certificate %d as expired (NotAfter %s)", r.NewCertificateID, notAfter.Format(time.RFC3339))
	if !slices.Contains(r.Warnings, want) {
		t.Errorf("warnings %q lack %q", r.Warnings, want)
	}
	if !r.Expires.Equal(notAfter) {
		t.Errorf("row expires %s, want the new certificate's %s", r.Expires, notAfter)
	}
}
