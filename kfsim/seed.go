package kfsim

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SeedTarget is one (certificate, store) pair a world must hold: what
// `runner --simulate` and `runner sim --seed` know from a plan row.
type SeedTarget struct {
	CertificateID int    // 0: a new id is chosen
	Thumbprint    string // "" : one is generated
	StoreID       string
	Alias         string
	NeedsPassword bool // the store's type needs an entry password (PEM…)
}

// SeedFixture builds a world holding every certificate and store the
// targets name: one container, one template, each certificate issued 377
// days before now and expiring 20 days after it (so due under the default
// 30d), and already installed in its stores under its alias. Its cost is
// linear in the number of targets, so a world of 100,000 rows is built in
// well under a second.
func SeedFixture(targets []SeedTarget, now time.Time) Fixture {
	fx := Fixture{
		Containers: []Container{{Id: 1, Name: "Default"}},
		Templates:  []Template{{Name: "WebServer", Lifetime: 397 * 24 * time.Hour}},
	}
	now = now.UTC().Truncate(time.Second)
	notBefore, notAfter := now.Add(-377*24*time.Hour), now.Add(20*24*time.Hour)
	certIndex := make(map[string]int, len(targets)) // certificate key -> index in fx.Certificates
	storeIndex := map[string]int{}
	nextID := 900000
	for _, t := range targets {
		store := storeKey(t.StoreID)
		si, ok := storeIndex[store]
		if !ok {
			si = len(fx.Stores)
			storeIndex[store] = si
			n := strconv.Itoa(si + 1)
			if si < 9 {
				n = "0" + n
			}
			fx.Stores = append(fx.Stores, Store{
				Id:            store,
				ContainerId:   1,
				ClientMachine: "host" + n + ".example.internal",
				StorePath:     "/etc/ssl/store" + n,
				CertStoreType: 1,
			})
		}
		if t.NeedsPassword {
			fx.Stores[si].RequiresEntryPassword = true
		}

		key := "thumbprint:" + strings.ToUpper(t.Thumbprint)
		if t.CertificateID != 0 {
			key = "id:" + strconv.Itoa(t.CertificateID)
		}
		ci, ok := certIndex[key]
		if !ok {
			id := t.CertificateID
			if id == 0 {
				nextID++
				id = nextID
			}
			cn := "app" + strconv.Itoa(id) + ".example.internal"
			ci = len(fx.Certificates)
			certIndex[key] = ci
			fx.Certificates = append(fx.Certificates, Certificate{
				Id:                       id,
				Thumbprint:               strings.ToUpper(t.Thumbprint),
				IssuedDN:                 "CN=" + cn + ", O=Example, C=US",
				IssuedCN:                 cn,
				NotBefore:                notBefore,
				NotAfter:                 notAfter,
				TemplateName:             "WebServer",
				CertificateAuthorityName: `ca.example.internal\Example Issuing CA`,
			})
		}
		st := fx.Stores[si]
		fx.Certificates[ci].Locations = append(fx.Certificates[ci].Locations, Location{
			StoreMachine: st.ClientMachine,
			StorePath:    st.StorePath,
			StoreType:    st.CertStoreType,
			Alias:        t.Alias,
			CertStoreId:  st.Id,
		})
	}
	return fx
}

// SyntheticTargets returns the targets of a generated estate: certificates
// 1001 … 1000+n, each installed in the same m stores (GUIDs
// 00000000-0000-4000-8000-00000000000k) under the alias "app<id>". With
// SeedFixture it builds the worlds of benchmarks.
func SyntheticTargets(n, m int) []SeedTarget {
	out := make([]SeedTarget, 0, n*m)
	stores := make([]string, m)
	for k := range stores {
		stores[k] = fmt.Sprintf("00000000-0000-4000-8000-%012d", k+1)
	}
	for i := range n {
		id := 1001 + i
		alias := "app" + strconv.Itoa(id)
		for _, st := range stores {
			out = append(out, SeedTarget{CertificateID: id, StoreID: st, Alias: alias})
		}
	}
	return out
}
