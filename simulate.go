package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"runner/keyfactor"
	"runner/kfsim"
	"runner/plan"
)

// Demo credentials of a simulator started without KEYFACTOR_USERNAME and
// KEYFACTOR_PASSWORD. They open nothing but the simulator.
const (
	demoDomain   = "KFSIM"
	demoUser     = "runner"
	demoPassword = "simulator"
)

// simulator is kfsim served over HTTP on loopback for --simulate.
type simulator struct {
	srv          *http.Server
	url          string
	clientConfig keyfactor.Config
}

func (s *simulator) Close() { stopServer(s.srv) }

// stopServer lets answers under way finish for a moment, then closes the
// connections still open (Shutdown itself closes idle keep-alive ones at
// once; what is left is an answer that takes longer, or a connection whose
// first request has not come), so that stopping takes two seconds at most
// and is no error.
func stopServer(srv *http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		_ = srv.Close()
	}
}

// simUser is the Command user the simulator knows: the one in the
// environment, so `runner sim` and `runner` can share one, else the demo
// user.
func simUser() kfsim.User {
	u := kfsim.User{Username: demoUser, Domain: demoDomain, Password: demoPassword, Permissions: fullPermissions()}
	if name, pw := os.Getenv("KEYFACTOR_USERNAME"), os.Getenv("KEYFACTOR_PASSWORD"); name != "" && pw != "" {
		u.Username, u.Domain, u.Password = name, os.Getenv("KEYFACTOR_DOMAIN"), pw
	}
	return u
}

// fullPermissions are the least a renew-and-deploy account needs: read
// certificates, PFX enrollment, read and schedule certificate stores.
func fullPermissions() []string {
	return []string{keyfactor.PermCertificatesRead, keyfactor.PermEnrollPFX, keyfactor.PermStoresRead, keyfactor.PermStoresSchedule}
}

// startSimulator serves a simulator seeded from the plan on 127.0.0.1.
func startSimulator(p *plan.Plan, logger *slog.Logger) (*simulator, error) {
	sim := kfsim.New(kfsim.Options{
		JobDelay: 2 * time.Second,
		Logf:     func(format string, args ...any) { logger.Debug(fmt.Sprintf(format, args...), "component", "kfsim") },
	})
	user := simUser()
	fx := fixtureFromPlan(p, time.Now())
	fx.Users = append(fx.Users, user)
	if err := sim.Load(fx); err != nil {
		return nil, fmt.Errorf("seed the simulator from %s: %w", p.Path, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("start the simulator on loopback: %w", err)
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	url := "http://" + ln.Addr().String()
	return &simulator{
		srv: srv,
		url: url + sim.BasePath(),
		clientConfig: keyfactor.Config{
			Hostname: url,
			APIPath:  sim.BasePath(),
			Username: user.Username,
			Domain:   user.Domain,
			Password: user.Password,
		},
	}, nil
}

// fixtureFromPlan seeds a simulated world from the plan's rows.
func fixtureFromPlan(p *plan.Plan, now time.Time) kfsim.Fixture {
	targets := make([]kfsim.SeedTarget, len(p.Rows))
	for i, r := range p.Rows {
		targets[i] = kfsim.SeedTarget{CertificateID: r.CertificateID, Thumbprint: r.Thumbprint, StoreID: r.StoreID, Alias: r.Alias, NeedsPassword: !r.Password.IsZero()}
	}
	return kfsim.SeedFixture(targets, now)
}
