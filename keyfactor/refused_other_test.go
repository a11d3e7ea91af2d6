//go:build !unix

package keyfactor

import (
	"net"
	"testing"
)

// refusedAddr returns a loopback URL nothing listens on: the port of a
// listener closed at once. Unlike the unix version (a port bound and never
// listened on), another socket could take the port before the test
// connects; there is no portable way to hold a port without listening.
func refusedAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}
