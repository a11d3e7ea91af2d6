// Package simtest runs the keyfactor client against the kfsim simulator
// over real HTTP. It holds tests only; it is a package of its own so that
// the client's unit tests do not depend on the simulator, and the
// simulator, which imports nothing from keyfactor, cannot share the
// client's mistakes.
package simtest
