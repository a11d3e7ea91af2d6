package plan

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// validatePlans are plans with every kind of problem, and good ones.
func validatePlans(tb testing.TB) map[string]string {
	tb.Helper()
	plans := map[string]string{}
	files, err := filepath.Glob(filepath.Join("testdata", "*.csv"))
	if err != nil {
		tb.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		plans[filepath.Base(f)] = string(b)
	}
	many := "certificate_id,thumbprint,store_id,password,template,certificate_authority\n"
	for i := range 40 {
		many += "7,," + strings.Replace(guidA, "3f2a", string(rune('a'+i%26))+string(rune('a'+i/26))+"2a", 1) + ",env:P,T,CA\n"
	}
	plans["many stores with a duplicate"] = many + "7,," + strings.Replace(guidA, "3f2a", "ca2a", 1) + ",env:P,T,CA\n"
	plans["id and thumbprint mixed"] = "certificate_id,thumbprint,store_id\n1234," + thumb + "," + guidA + "\n," + thumb + "," + guidB + "\n," + thumb + "," + guidA + "\n99," + thumb + "," + guidB + "\n"
	plans["disagreements"] = "certificate_id,store_id,password,renew_before\n1," + guidA + ",env:A,30d\n1," + guidB + ",env:B,31d\n"
	plans["properties"] = "certificate_id,store_id,properties\n1," + guidA + ",\"{\"\"a\"\":1}\"\n2," + guidA + ",{x}\n3," + guidA + ",\"[1]\"\n4," + guidA + ",\"{} {}\"\n5," + guidA + ",null\n6," + guidA + ",\" {\"\"b\"\": [1, {\"\"c\"\": 2.50}]} \"\n7," + guidA + ",\"{\"\"a\"\":\"\n"
	plans["unknown column"] = "certificate_id,store_id,x\n1,abc,1\n2," + guidA + ",2\n"
	return plans
}

func TestValidateAgreesWithLoad(t *testing.T) {
	dir := t.TempDir()
	for name, text := range validatePlans(t) {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
			if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			opts := fixedClock(Options{})
			p, loadErr := Load(path, opts)
			counts, err := Validate(path, opts)
			var loadList, list *ErrorList
			if errors.As(loadErr, &loadList) != errors.As(err, &list) {
				t.Fatalf("Load: %v\nValidate: %v", loadErr, err)
			}
			bad := map[string]bool{"errors.csv": true, "many stores with a duplicate": true, "id and thumbprint mixed": true, "disagreements": true, "unknown column": true, "properties": true}
			if bad[name] != (loadList != nil) {
				t.Fatalf("Load: %v; want a plan error: %v", loadErr, bad[name])
			}
			if loadList != nil {
				if !reflect.DeepEqual(*list, *loadList) {
					t.Errorf("Validate:\n%s\nLoad:\n%s", list.Summary(0), loadList.Summary(0))
				}
				return
			}
			if err != nil || loadErr != nil {
				t.Fatalf("Load: %v, Validate: %v", loadErr, err)
			}
			stores := map[string]bool{}
			for _, r := range p.Rows {
				stores[r.StoreID] = true
			}
			if want := (Counts{Rows: len(p.Rows), Certificates: len(p.Jobs), Stores: len(stores)}); counts != want {
				t.Errorf("Validate counts %+v, Load's plan has %+v", counts, want)
			}
		})
	}
}

func TestValidateMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.csv")
	if _, err := Validate(path, Options{}); err == nil || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Errorf("Validate missing file: %v", err)
	}
}
