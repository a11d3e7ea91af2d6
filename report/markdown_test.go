package report

import (
	"strings"
	"testing"
)

func TestMarkdownEscapesCells(t *testing.T) {
	md := string(render(t, WriteMarkdown, fixture()))
	tests := []struct {
		name, want string
	}{
		{"pipe and newline", `window expired 12s before deploy \| renewed, not deployed<br>rerun to deploy 5679`},
		{"html as entities, inline markup escaped", `Command said: &lt;script&gt;alert("x")&lt;/script&gt; &amp; \[click\](http://evil.example) \*now\*`},
		{"warning escaped", `- line 7: =1+2 &lt;b&gt;bold&lt;/b&gt;`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(md, tt.want) {
				t.Errorf("markdown lacks %q", tt.want)
			}
		})
	}
	// Every table line must have the same number of unescaped pipes.
	var counts []int
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "| Line") || strings.HasPrefix(line, "| 3 ") || strings.HasPrefix(line, "| 7 ") {
			counts = append(counts, strings.Count(line, "|")-strings.Count(line, `\|`))
		}
	}
	if len(counts) != 3 || counts[0] != counts[1] || counts[0] != counts[2] {
		t.Errorf("pipes per table line = %v, want three equal counts", counts)
	}
}

func TestMarkdownEscaper(t *testing.T) {
	tests := []struct{ in, want string }{
		{"<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"},
		{"[x](javascript:alert(1))", `\[x\](javascript:alert(1))`},
		{"![img](http://evil/x.png)", `!\[img\](http://evil/x.png)`},
		{"`code` *b* _i_ ~s~", "\\`code\\` \\*b\\* \\_i\\_ \\~s\\~"},
		{`a\|b`, `a\\\|b`},
		{"&lt;", "&amp;lt;"},
		{"two\nlines", "two<br>lines"},
	}
	for _, tt := range tests {
		if got := mdCell(tt.in); got != tt.want {
			t.Errorf("mdCell(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestMarkdownRunThatDidNotHappen(t *testing.T) {
	r := &Report{Run: Run{NotRun: "plan.csv:3: store_id: not a GUID: \"<b>\"", ExitCode: 2}}
	md := string(render(t, WriteMarkdown, r))
	for _, want := range []string{"**The run did not happen:** plan.csv:3: store\\_id: not a GUID: \"&lt;b&gt;\"", "- **Exit code:** 2", "No rows."} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}
