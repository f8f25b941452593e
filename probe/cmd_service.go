package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/presscap/presscap/beeper"
	"github.com/presscap/presscap/leds"
	"github.com/presscap/presscap/probe/config"
	"github.com/presscap/presscap/probe/internal/feedback"
	"github.com/presscap/presscap/probe/internal/fleet"
	"github.com/presscap/presscap/probe/internal/fleet/fleetconfig"
	"github.com/presscap/presscap/probe/internal/service"
	"github.com/presscap/presscap/probe/internal/status"
)

// loadConfig finds, parses and validates the configuration: -config, else
// $PRESSCAP_CONFIG, else the stack of config.LayerPaths, else the defaults.
// It names the files used joined by " + ", lowest layer first.
func loadConfig(flagPath string) (config.Config, string, error) {
	c, used, err := loadConfigFiles(flagPath)
	return c, strings.Join(used, " + "), err
}

// layered says the configuration is the stack of config.LayerPaths (no
// -config, no $PRESSCAP_CONFIG): only then is there a fleet layer.
func layered(flagPath string) bool {
	return flagPath == "" && os.Getenv(config.EnvVar) == ""
}

func loadConfigFiles(flagPath string) (config.Config, []string, error) {
	return loadServiceConfig(flagPath, config.LayerPaths())
}

// loadServiceConfig is loadConfigFiles with the layers at paths.
func loadServiceConfig(flagPath string, paths []string) (config.Config, []string, error) {
	if layered(flagPath) {
		return loadLayers(paths)
	}
	path, err := config.Find(flagPath, os.Getenv)
	if err != nil {
		return config.Config{}, nil, err
	}
	c, err := config.Load(path)
	if err != nil {
		return config.Config{}, []string{path}, err
	}
	return c, []string{path}, validated(c, path)
}

// loadLayers parses and validates the files of paths that exist, as
// layers over the defaults.
func loadLayers(paths []string) (config.Config, []string, error) {
	c, used, err := config.LoadLayers(paths)
	if err != nil {
		return config.Config{}, used, err
	}
	return c, used, validated(c, strings.Join(used, " + "))
}

// validated checks c as the device runs it: valid, and its network mode
// fits the image's DHCP client (config.DHCPEnv, set by the image's init).
func validated(c config.Config, name string) error {
	err := c.Validate()
	if err == nil {
		err = c.Network.CheckDHCP(os.Getenv(config.DHCPEnv))
	}
	if err != nil {
		if name == "" {
			name = "the built-in defaults"
		}
		return fmt.Errorf("config %s is not valid:\n%w", name, err)
	}
	return nil
}

// configFlag defines -config, the file loadConfig looks at first.
func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", "", "configuration `FILE` (default: $"+config.EnvVar+", then the layers "+strings.Join(config.LayerPaths(), " + ")+")")
}

func runService(ctx context.Context, e env, args []string) error {
	msgs := &fleet.Recent{}
	logger := log.New(&recentLog{w: e.stdout, msgs: msgs}, "", log.LstdFlags|log.LUTC)
	root := e.sysRoot
	if root == "" {
		root = "/"
	}
	// First, before even the flags: a build on trial is judged if its
	// probe gets no further.
	upd := startUpdates(ctx, root, logger.Printf)
	return upd.stopped(ctx, serve(ctx, e, args, root, logger, msgs, upd))
}

// serve is probe run once the guard has started.
func serve(ctx context.Context, e env, args []string, root string, logger *log.Logger, msgs *fleet.Recent, upd *updates) error {
	fs := newFlagSet("run", e)
	path := configFlag(fs)
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	// The layers are below the system root, "/" but in tests.
	layers := config.LayerPaths()
	for i := range layers {
		layers[i] = filepath.Join(root, layers[i])
	}
	image, fleetPath, local := layers[0], layers[1], layers[2]
	reload := func() error { _, _, err := loadServiceConfig(*path, layers); return err }
	c, used, err := loadServiceConfig(*path, layers)
	var fleetErr error
	if err != nil && slices.Contains(used, fleetPath) {
		// The fleet layer was valid when it came; an updated image or a
		// local edit made the stack invalid. Run without it rather than
		// not at all, and say so in the report.
		fleetErr = err
		logger.Printf("presscap: configuration error with the fleet layer %s, running without it: %v", fleetPath, err)
		reload = func() error { _, _, err := loadLayers([]string{image, local}); return err }
		c, used, err = loadLayers([]string{image, local})
	}
	if err != nil {
		// A bad file must not cut the customer's line: the bridge comes
		// up as the last good configuration had it.
		if n, from, ok := lastGoodNetwork(*path, layers); ok {
			logger.Printf("network: from the last good configuration (%s)", from)
			netCtx, netCancel := context.WithCancel(ctx)
			wait := startNetworkMode(netCtx, n, logger.Printf, nil)
			defer func() { netCancel(); wait() }()
		}
		return badConfig(ctx, logger, reload, err)
	}
	shown := strings.Join(used, " + ")
	if shown == "" {
		shown = "built-in defaults"
	}
	logger.Printf("presscap: configuration from %s", shown)
	if err := saveLastGood(c); err != nil {
		logger.Printf("network: %v (a bad configuration would not find this one)", err)
	}
	netCtx, netCancel := context.WithCancel(ctx)
	links := &linkEvents{}
	waitNet := startNetworkMode(netCtx, c.Network, logger.Printf, links)
	defer func() { netCancel(); waitNet() }()
	for _, w := range c.Warnings() {
		logger.Printf("presscap: configuration warning: %v", w)
	}

	var fb feedback.Device
	if l, err := leds.New(c.Leds); err != nil {
		logger.Printf("leds: %v (carrying on without the LED)", err)
	} else {
		fb.LEDs = l
		defer l.Close()
	}
	fb.Beeper = beeper.New(c.Beeper, logger)
	defer fb.Beeper.Close()
	fb.State("booting")

	fl := setupFleet(c, root, logger.Printf)
	c.Upload = c.Upload.ForProbe(fl.id.Value)
	loc, err := c.Clock.Location()
	if err != nil { // refused by Validate
		return badConfig(ctx, logger, reload, err)
	}
	evening := &feedback.Evening{Feedback: fb, Quiet: func(t time.Time) bool { return c.Beeper.QuietAt(t.In(loc)) }}
	svc, err := service.New(service.Options{Config: c, Logf: logger.Printf, Feedback: evening, Host: fl.host, FleetID: fl.id.Value})
	if err != nil {
		return badConfig(ctx, logger, reload, err)
	}
	links.attach(svc.LinkChanged)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var fromServer *fleetconfig.Applier
	restart := make(chan struct{})
	if layered(*path) && fl.id.Value != "" && c.Upload.Enabled {
		fromServer = &fleetconfig.Applier{Below: []string{image}, Above: []string{local}, DHCP: os.Getenv(config.DHCPEnv),
			Path: fleetPath, Busy: svc.Storage().Busy, Logf: logger.Printf,
			Restart: func() { close(restart); cancel() }}
		fromServer.Start()
		if fleetErr != nil {
			fromServer.Refused(fleetErr)
		}
		go fromServer.Run(ctx, 10*time.Second)
	}
	updReport := upd.run(ctx, c, svc, fl)
	tunReport, tunWait := runTunnel(ctx, c, fl, root, svc, logger.Printf)
	srvDone := make(chan error, 1)
	if len(c.Status.Listen) > 0 {
		// The installer's checks run on the service's own speaker, LED,
		// upload configuration and trigger.
		checks := &status.Checks{Upload: c.Upload, StateDir: c.Storage.StateDir, ID: fl.id.Value, Beeper: fb.Beeper, LEDs: fb.LEDs}
		srv := statusServer(c, fl.host, withTunnel(status.WithChecks(svc, checks), tunReport), logger.Printf)
		go func() { srvDone <- srv.Run(ctx) }()
	} else {
		srvDone <- nil
	}
	repDone := make(chan struct{})
	told := make(chan struct{})
	sent := sync.OnceFunc(func() { close(told) })
	go func() {
		defer close(repDone)
		runReports(ctx, fl, c, used, root, svc, fb.LEDs != nil && c.Leds.Driver != leds.DriverNone, msgs, fromServer, updReport, tunReport, sent, logger.Printf)
	}()
	if fl.password != "" {
		go passwordReboot(ctx, c, root, svc, told, logger.Printf)
	}
	err = svc.Run(ctx)
	cancel()
	<-srvDone
	<-repDone
	tunWait()
	select {
	case <-restart:
		// Not 0 or 125: gokrazy restarts the service only then.
		return errors.New("presscap: restarting with the configuration from the server")
	default:
	}
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// statusServer is the status listener of the configuration, serving svc.
func statusServer(c config.Config, host string, svc status.Source, logf func(string, ...any)) *status.Server {
	var capture []string
	for _, l := range c.Links {
		capture = append(capture, l.Interface)
	}
	return &status.Server{Listen: c.Status.Listen, Logf: logf,
		Handler:       status.Handler(svc, status.Auth{Token: c.Status.Token, PasswordFiles: c.Status.PasswordFiles}),
		Hosts:         status.Hosts{Names: status.OwnNames(host)},
		CaptureIfaces: capture,
	}
}

// badConfig keeps a service with a bad configuration up, showing the fault
// on the LED and the reason in the log, instead of exiting into gokrazy's
// restart loop; when the file changes to a valid one it exits so that
// gokrazy restarts it with the new one.
func badConfig(ctx context.Context, logger *log.Logger, reload func() error, cause error) error {
	logger.Printf("presscap: NOT RUNNING, bad configuration: %v", cause)
	if l, err := leds.New(leds.DefaultConfig()); err == nil {
		l.Set(leds.FaultBadConfig)
		defer l.Close()
	}
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return cause
		case <-t.C:
			if reload() == nil {
				return errors.New("configuration fixed: restarting")
			}
		}
	}
}

func runCheck(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("check", e)
	path := configFlag(fs)
	printDefault := fs.Bool("print-default", false, "print the default configuration as JSON and exit")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *printDefault {
		return printJSON(e.stdout, config.DefaultConfig())
	}
	c, used, err := loadConfig(*path)
	if err != nil {
		return err
	}
	if used == "" {
		used = "no file (built-in defaults)"
	}
	fmt.Fprintf(e.stdout, "%s: OK\n", used)
	for _, w := range c.Warnings() {
		fmt.Fprintf(e.stdout, "warning: %v\n", w)
	}
	fmt.Fprintf(e.stdout, "window: %v before + %v after; the ring holds about %v at %g Mbit/s\n",
		c.Trigger.Before.D(), c.Trigger.After.D(), c.History().Round(time.Second), c.Ring.ExpectedMbps)
	for _, x := range c.Exports {
		f := x.Filter
		if f == "" {
			f = "(all packets)"
		}
		link := x.Link
		if link == "" {
			link = "all links"
		}
		fmt.Fprintf(e.stdout, "export %s: %s on %s\n", x.Name, f, link)
	}
	// What each button saves, as the acknowledgement counts them.
	for i, p := range c.Trigger.Profiles {
		b, a := c.Trigger.Span(p)
		var names []string
		for _, x := range p.Exports {
			names = append(names, x.Name)
		}
		exports := strings.Join(names, ", ")
		if len(names) == 0 {
			exports = "the exports above"
		}
		fmt.Fprintf(e.stdout, "profile %d %s (%s): %v before + %v after; %s\n", i+1, p.Name, strings.Join(p.Keys, " "), b, a, exports)
	}
	return nil
}

// triggerURL derives the local status listener's trigger URL from the
// configuration: the first listen address, with a wildcard or "private"
// host replaced by loopback.
func triggerURL(c config.Config) (string, error) {
	if len(c.Status.Listen) == 0 {
		return "", errors.New("status.listen is empty: the service has no trigger endpoint (use -addr)")
	}
	host, port, err := net.SplitHostPort(c.Status.Listen[0])
	if err != nil {
		return "", err
	}
	switch host {
	case "", "private", "0.0.0.0", "::":
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/trigger", nil
}

func runTrigger(ctx context.Context, e env, args []string) error {
	fs := newFlagSet("trigger", e)
	path := fs.String("config", "", "configuration `FILE` of the running service")
	addr := fs.String("addr", "", "status listener host:port (default: from the configuration)")
	token := fs.String("token", "", "trigger token (default: status.token, else gokrazy's password)")
	profile := fs.String("profile", "", "press this `NAME`'s button (trigger.profiles; default: the first profile)")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	c, _, err := loadConfig(*path)
	if err != nil {
		return err
	}
	url := ""
	if *addr != "" {
		url = "http://" + *addr + "/trigger"
	} else if url, err = triggerURL(c); err != nil {
		return err
	}
	if *profile != "" {
		url += "?profile=" + neturl.QueryEscape(*profile)
	}
	req, err := http.NewRequestWithContext(ctx, "POST", url, nil)
	if err != nil {
		return err
	}
	switch {
	case *token != "":
		req.Header.Set("Authorization", "Bearer "+*token)
	case c.Status.Token != "":
		req.Header.Set("Authorization", "Bearer "+c.Status.Token)
	default:
		pw := status.Auth{PasswordFiles: c.Status.PasswordFiles}.Password()
		if pw == "" {
			return errors.New("no token: set status.token, pass -token, or run where gokrazy's password file is readable")
		}
		req.SetBasicAuth("gokrazy", pw)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("trigger: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("trigger: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var p status.Press
	if err := json.Unmarshal(body, &p); err != nil {
		return fmt.Errorf("trigger: bad answer %q: %w", body, err)
	}
	prof := ""
	if p.Profile != "" {
		prof = " (profile " + p.Profile + ")"
	}
	fmt.Fprintf(e.stdout, "pressed at %s%s: window #%d %s\n", p.Time.UTC().Format(time.RFC3339Nano), prof, p.Window, p.Decision)
	return nil
}
