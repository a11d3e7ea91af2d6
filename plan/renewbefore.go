package plan

import (
	"strconv"
	"strings"
	"time"
)

// RenewBefore says how long before expiry a certificate becomes due for
// renewal: either a fixed Duration before NotAfter, or a Percent of the
// validity period before NotAfter (certbot's and cert-manager's two styles).
// At most one field is set; the zero value means "not set".
type RenewBefore struct {
	Duration time.Duration
	Percent  float64
}

// IsZero reports whether neither field is set.
func (r RenewBefore) IsZero() bool { return r.Duration == 0 && r.Percent == 0 }

// ParseRenewBefore reads "30d", "720h", "90m" (any Go duration, plus a
// whole or decimal number of days with "d") or "33%" (more than 0 and less
// than 100 percent of the validity period).
func ParseRenewBefore(s string) (RenewBefore, error) {
	s = strings.TrimSpace(s)
	const expected = "a duration such as 30d, 720h or 90m, or a percentage of the validity period such as 33%"
	if s == "" {
		return RenewBefore{}, &valueError{problem: "empty", expected: expected}
	}
	if num, ok := strings.CutSuffix(s, "%"); ok {
		p, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
		if err != nil {
			return RenewBefore{}, &valueError{problem: "not a percentage", value: s, expected: expected}
		}
		if !(p > 0 && p < 100) {
			return RenewBefore{}, &valueError{problem: "percentage out of range", value: s, expected: "more than 0% and less than 100%"}
		}
		return RenewBefore{Percent: p}, nil
	}
	var d time.Duration
	if num, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseFloat(num, 64)
		// Only plain decimals: ParseFloat would also take "NaN", "1e3", "0x1p3".
		if err != nil || strings.Trim(num, "0123456789.") != "" || days > 1e5 {
			return RenewBefore{}, &valueError{problem: "not a duration or percentage", value: s, expected: expected}
		}
		d = time.Duration(days * float64(24*time.Hour))
	} else {
		var err error
		d, err = time.ParseDuration(s)
		if err != nil {
			return RenewBefore{}, &valueError{problem: "not a duration or percentage", value: s, expected: expected}
		}
	}
	if d <= 0 {
		return RenewBefore{}, &valueError{problem: "not positive", value: s, expected: "a duration greater than zero, e.g. 30d"}
	}
	return RenewBefore{Duration: d}, nil
}

// DueAt returns when renewal becomes due for a certificate valid from
// notBefore to notAfter: notAfter minus Duration, or notAfter minus Percent
// of the validity period. A zero RenewBefore is due at notAfter.
func (r RenewBefore) DueAt(notBefore, notAfter time.Time) time.Time {
	switch {
	case r.Duration != 0:
		return notAfter.Add(-r.Duration)
	case r.Percent != 0:
		span := notAfter.Sub(notBefore)
		return notAfter.Add(-time.Duration(float64(span) * r.Percent / 100))
	default:
		return notAfter
	}
}

// String returns the shortest plan spelling: "30d", "36h", "90m", "33%",
// or "" when unset.
func (r RenewBefore) String() string {
	switch {
	case r.Percent != 0:
		return strconv.FormatFloat(r.Percent, 'f', -1, 64) + "%"
	case r.Duration == 0:
		return ""
	case r.Duration%(24*time.Hour) == 0:
		return strconv.FormatInt(int64(r.Duration/(24*time.Hour)), 10) + "d"
	case r.Duration%time.Hour == 0:
		return strconv.FormatInt(int64(r.Duration/time.Hour), 10) + "h"
	case r.Duration%time.Minute == 0:
		return strconv.FormatInt(int64(r.Duration/time.Minute), 10) + "m"
	default:
		return r.Duration.String()
	}
}
