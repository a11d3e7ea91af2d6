//go:build unix

package keyfactor

import (
	"strconv"
	"syscall"
	"testing"
)

// refusedAddr returns a loopback URL whose port is bound, but never
// listened on, by a socket held until the test ends: a connection to it is
// refused (the kernel answers with a reset), and no other socket can take
// the port meanwhile, as one could after a listener was closed.
func refusedAddr(tb testing.TB) string {
	tb.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		tb.Fatal(err)
	}
	syscall.CloseOnExec(fd)
	tb.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		tb.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		tb.Fatal(err)
	}
	in4, ok := sa.(*syscall.SockaddrInet4)
	if !ok || in4.Port == 0 {
		tb.Fatalf("bound to %#v", sa)
	}
	return "http://127.0.0.1:" + strconv.Itoa(in4.Port)
}
