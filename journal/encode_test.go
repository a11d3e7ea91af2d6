package journal

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"
)

// encodeLineage writes what encoding/json writes, for every shape a
// lineage takes and for strings and times it leaves to encoding/json.
func TestEncodeLineageMatchesJSON(t *testing.T) {
	at := time.Date(2026, 11, 24, 2, 0, 3, 123456789, time.FixedZone("CET", 3600))
	full := Renewal{Seq: 9, Kind: KindRenewal, State: StateRenewed, OldCertificateID: 100, Subject: "CN=app.example.com, O=Example, C=US",
		StartedAt: at, NewCertificateID: 101, RequestID: 55, RenewedAt: at.Add(time.Second), Message: "issued", Orphaned: true,
		Stores: map[string]StoreState{
			"6b3c6f0e-1f4e-4d5a-9d53-0d8f2a7f1c11": {Status: StoreJobCreated, At: at},
			"0a3c6f0e-1f4e-4d5a-9d53-0d8f2a7f1c11": {Status: StoreFailed, At: at, Detail: "no job"},
			"ffff6f0e-1f4e-4d5a-9d53-0d8f2a7f1c11": {Status: StoreVerified},
		}}
	tests := []struct {
		name string
		l    Lineage
		fast bool // written without encoding/json
	}{
		{name: "no renewals", l: Lineage{Root: 1}, fast: true},
		{name: "in flight, fields left out", l: Lineage{Root: 1, Renewals: []Renewal{{Seq: 1, Kind: KindRenewal, State: StateInFlight, OldCertificateID: 1}}}, fast: true},
		{name: "every field", l: Lineage{Root: 100, Renewals: []Renewal{full}}, fast: true},
		{name: "several renewals", l: Lineage{Root: 100, Renewals: []Renewal{full, {Seq: 10, Kind: KindAdoption, State: StateRenewed, OldCertificateID: 101, NewCertificateID: 102, StartedAt: at}}}, fast: true},
		{name: "subject with quotes and HTML", l: Lineage{Root: 1, Renewals: []Renewal{{Seq: 1, Kind: KindRenewal, State: StateInFlight, Subject: `CN="a<b>&c", O=\x`}}}},
		{name: "message with a newline and non-ASCII", l: Lineage{Root: 1, Renewals: []Renewal{{Seq: 1, Kind: KindRenewal, State: StateFailed, Message: "refusé\nline\u2028"}}}},
		{name: "store detail with a tab", l: Lineage{Root: 1, Renewals: []Renewal{{Seq: 1, Kind: KindRenewal, State: StateRenewed, Stores: map[string]StoreState{"s": {Status: "failed", Detail: "a\tb"}}}}}},
		{name: "invalid UTF-8", l: Lineage{Root: 1, Renewals: []Renewal{{Seq: 1, Kind: KindRenewal, State: StateRenewed, Subject: "CN=\xff"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkEncoding(t, tt.l)
			if _, fast := appendLineage(nil, tt.l); fast != tt.fast {
				t.Errorf("written without encoding/json: %t, want %t", fast, tt.fast)
			}
		})
	}
}

// Times json.Marshal refuses give its error, not a file value.
func TestEncodeLineageRefusesWhatJSONRefuses(t *testing.T) {
	l := Lineage{Root: 1, Renewals: []Renewal{{Seq: 1, Kind: KindRenewal, State: StateRenewed, RenewedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}}}
	if _, err := encodeLineage(l); err == nil {
		t.Error("a year past 9999 was encoded")
	}
}

// Random lineages of the shapes the runner writes encode as encoding/json
// encodes them.
func TestEncodeLineageRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"", "CN=app.example.com", "job created", `a "quoted" <x>`, "ümlaut", "6b3c6f0e-1f4e-4d5a-9d53-0d8f2a7f1c11"}
	pick := func() string { return words[rng.IntN(len(words))] }
	when := func() time.Time {
		if rng.IntN(3) == 0 {
			return time.Time{}
		}
		return time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)).In(time.FixedZone("", 3600*(rng.IntN(25)-12)))
	}
	for range 500 {
		l := Lineage{Root: rng.IntN(1000)}
		for i := range rng.IntN(4) {
			r := Renewal{Seq: uint64(i + 1), Kind: Kind(pick()), State: State(pick()), OldCertificateID: rng.IntN(3) * rng.IntN(1<<40),
				Subject: pick(), StartedAt: when(), NewCertificateID: rng.IntN(2) * rng.IntN(1<<30), RequestID: rng.IntN(2) * rng.IntN(1000),
				RenewedAt: when(), Message: pick(), Orphaned: rng.IntN(2) == 0}
			for range rng.IntN(3) {
				if r.Stores == nil {
					r.Stores = map[string]StoreState{}
				}
				r.Stores[pick()] = StoreState{Status: pick(), At: when(), Detail: pick()}
			}
			l.Renewals = append(l.Renewals, r)
		}
		checkEncoding(t, l)
	}
}

func checkEncoding(t *testing.T, l Lineage) {
	t.Helper()
	want, err := marshalLineage(l)
	if err != nil {
		t.Fatal(err)
	}
	got, err := encodeLineage(l)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("encodeLineage:\n got %s\nwant %s", got, want)
	}
}
