package keyfactor

import (
	"fmt"
	"log/slog"
)

// maxPages bounds any listing, so that no server can keep a caller paging
// forever.
const maxPages = 100_000

// pager walks the pages of a list endpoint. Command's pages are 1-based
// (pageReturned) and the server may cap the page size it was asked for, so
// the page size asked for is never taken as proof of a full page.
type pager struct {
	what  string // "certificates", for errors and logs
	limit int    // page size asked for
	log   *slog.Logger
}

// run calls fetch for page 1, 2, … . fetch returns how many records the
// page held (odd ones included), how many of them were new (not seen on an
// earlier page), and X-Total-Count (-1 when absent). The listing ends:
//   - at an empty page;
//   - at a short page (fewer records than asked for, or than an earlier
//     page held) once the records seen reach X-Total-Count, so that a
//     server that caps the page size is read to the end, and a count that
//     is too low cannot end the listing while pages are still full;
//   - without X-Total-Count, at a page shorter than an earlier one (the
//     server's real page size is the longest page it handed out).
//
// A page holding only records seen before means the server ignores
// pageReturned; that is an error unless X-Total-Count says every record is
// in, as is a listing past maxPages. A count
// that disagrees with the records read is logged.
func (p pager) run(fetch func(page int) (n, fresh, total int, err error)) error {
	seen, longest, lastTotal := 0, 0, -1
	for page := 1; page <= maxPages; page++ {
		n, fresh, total, err := fetch(page)
		if err != nil {
			return err
		}
		if total >= 0 {
			lastTotal = total
		}
		if n == 0 {
			p.checkTotal(seen, lastTotal)
			return nil
		}
		if fresh == 0 {
			if lastTotal >= 0 && seen >= lastTotal {
				// Everything the count promised is in: a server that
				// ignores pageReturned but had one page only.
				return nil
			}
			return fmt.Errorf("list %s page %d: the server sent only records of earlier pages; it seems to ignore pageReturned", p.what, page)
		}
		seen += n
		shorter := longest > 0 && n < longest
		short := n < p.limit || shorter
		longest = max(longest, n)
		switch {
		case total >= 0 && short && seen >= total:
			p.checkTotal(seen, total)
			return nil
		case total < 0 && shorter:
			return nil
		}
	}
	return fmt.Errorf("list %s: gave up after %d pages", p.what, maxPages)
}

// checkTotal logs an X-Total-Count that disagrees with the records read.
func (p pager) checkTotal(seen, total int) {
	if total >= 0 && total != seen && p.log != nil {
		p.log.Warn("keyfactor list count disagrees with its pages", "list", p.what, "x_total_count", total, "records", seen)
	}
}

// listAll pages through a listing with p's rule (see run). read reads one
// page: its records, those that could not be decoded, and X-Total-Count
// (-1 when absent). each is called for every record, in order, whose key
// was not met before; a record whose key reports false has none and is
// never taken for a repeat, nor is a record that could not be decoded. An
// error from read is returned with the page named; one from each ends the
// listing and is returned as is. The records that could not be decoded are
// returned either way.
func listAll[T any, K comparable](p pager, read func(page int) ([]T, []RecordError, int, error), key func(*T) (K, bool), each func(*T) error) ([]RecordError, error) {
	var odd []RecordError
	seen := make(map[K]bool)
	err := p.run(func(page int) (int, int, int, error) {
		recs, bad, total, err := read(page)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("list %s page %d: %w", p.what, page, err)
		}
		fresh := len(bad)
		for i := range recs {
			r := &recs[i]
			if k, ok := key(r); ok {
				if seen[k] {
					continue
				}
				seen[k] = true
			}
			fresh++
			if err := each(r); err != nil {
				return 0, 0, 0, err
			}
		}
		odd = append(odd, bad...)
		return len(recs) + len(bad), fresh, total, nil
	})
	return odd, err
}

// collectAll is listAll returning the records instead of handing each
// over; on an error they are dropped.
func collectAll[T any, K comparable](p pager, read func(page int) ([]T, []RecordError, int, error), key func(*T) (K, bool)) ([]T, []RecordError, error) {
	var all []T
	odd, err := listAll(p, read, key, func(r *T) error {
		all = append(all, *r)
		return nil
	})
	if err != nil {
		return nil, odd, err
	}
	return all, odd, nil
}
