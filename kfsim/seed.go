package kfsim

import (
	"fmt"
	"strings"
	"time"

	"runner/keyfactor"
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
// 30d), and already installed in its stores under its alias.
func SeedFixture(targets []SeedTarget, now time.Time) Fixture {
	fx := Fixture{
		Containers: []Container{{Id: 1, Name: "Default"}},
		Templates:  []Template{{Name: "WebServer", Lifetime: 397 * 24 * time.Hour}},
	}
	now = now.UTC().Truncate(time.Second)
	certIndex := map[string]int{} // certificate key -> index in fx.Certificates
	storeIndex := map[string]int{}
	nextID := 900000
	for _, t := range targets {
		store := strings.ToLower(t.StoreID)
		si, ok := storeIndex[store]
		if !ok {
			si = len(fx.Stores)
			storeIndex[store] = si
			fx.Stores = append(fx.Stores, Store{
				Id:            store,
				ContainerId:   1,
				ClientMachine: fmt.Sprintf("host%02d.example.internal", si+1),
				StorePath:     fmt.Sprintf("/etc/ssl/store%02d", si+1),
				CertStoreType: 1,
			})
		}
		if t.NeedsPassword {
			fx.Stores[si].RequiresEntryPassword = true
		}

		key := fmt.Sprintf("id:%d", t.CertificateID)
		if t.CertificateID == 0 {
			key = "thumbprint:" + strings.ToUpper(t.Thumbprint)
		}
		ci, ok := certIndex[key]
		if !ok {
			id := t.CertificateID
			if id == 0 {
				nextID++
				id = nextID
			}
			cn := fmt.Sprintf("app%d.example.internal", id)
			ci = len(fx.Certificates)
			certIndex[key] = ci
			fx.Certificates = append(fx.Certificates, Certificate{
				Id:                       id,
				Thumbprint:               strings.ToUpper(t.Thumbprint),
				IssuedDN:                 "CN=" + cn + ", O=Example, C=US",
				IssuedCN:                 cn,
				NotBefore:                now.Add(-377 * 24 * time.Hour),
				NotAfter:                 now.Add(20 * 24 * time.Hour),
				TemplateName:             "WebServer",
				CertificateAuthorityName: `ca.example.internal\Example Issuing CA`,
			})
		}
		st := fx.Stores[si]
		fx.Certificates[ci].Locations = append(fx.Certificates[ci].Locations, keyfactor.Location{
			StoreMachine: st.ClientMachine,
			StorePath:    st.StorePath,
			StoreType:    st.CertStoreType,
			Alias:        t.Alias,
			CertStoreId:  st.Id,
		})
	}
	return fx
}
