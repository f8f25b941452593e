package report

import (
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"
)

// WriteHTML writes the summary as one self-contained HTML page (inline CSS
// and SVG, no script, nothing fetched), findings first.
func WriteHTML(w io.Writer, s *Summary, title string) error {
	var links []template.HTML
	if len(s.Links) > 1 {
		for i := range s.Links {
			links = append(links, linkSVG(s, i))
		}
	}
	return page.Execute(w, struct {
		Title     string
		S         *Summary
		Rate      template.HTML
		LinkRates []template.HTML
	}{title, s, rateSVG(s), links})
}

const (
	svgW, svgH   = 800, 160
	svgPadL      = 50
	svgPadB      = 20
	svgPadT      = 14
	svgBarsWidth = svgW - svgPadL - 10
)

// rateSVG draws the packet rate per bin of the whole capture with the
// press marked and, in grey, the times a link was down. Its numbers come
// from the summary only, never from packet bytes.
func rateSVG(s *Summary) template.HTML {
	var down []LinkGap
	for _, l := range s.Links {
		down = append(down, l.Down...)
	}
	return drawRate(s, "rate", s.RatePackets, down, svgH)
}

// linkSVG draws one link's rate, smaller, with its own down times.
func linkSVG(s *Summary, i int) template.HTML {
	return drawRate(s, fmt.Sprintf("rate-link-%d", i), s.Links[i].RatePackets, s.Links[i].Down, svgH/2+svgPadB)
}

func drawRate(s *Summary, id string, bins []uint64, down []LinkGap, height int) template.HTML {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg id="%s" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="packets per %d s">`,
		id, svgW, height, svgW, height, s.RateBinSeconds)
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" fill="#fafafa"/>`, svgW, height)
	var peak uint64
	for _, v := range bins {
		peak = max(peak, v)
	}
	// The x axis spans the whole capture's bins, so the links line up.
	n := max(len(s.RatePackets), len(bins))
	plotH := float64(height - svgPadB - svgPadT)
	if n > 0 {
		bw := float64(svgBarsWidth) / float64(n)
		x := func(t time.Time) float64 {
			return float64(svgPadL) + t.Sub(s.Start).Seconds()/float64(s.RateBinSeconds)*bw
		}
		for _, g := range down {
			x0, x1 := max(x(g.From), svgPadL), min(x(g.To), svgW-10)
			fmt.Fprintf(&b, `<rect class="down" x="%.2f" y="%d" width="%.2f" height="%.2f" fill="#a0aec0"><title>link down %s</title></rect>`,
				x0, svgPadT, max(x1-x0, 1), plotH, g.Duration)
		}
		for i, v := range bins {
			if peak == 0 {
				break
			}
			h := float64(v) / float64(peak) * plotH
			fmt.Fprintf(&b, `<rect class="bar" x="%.2f" y="%.2f" width="%.2f" height="%.2f" fill="#2b6cb0"><title>%d s: %d packets</title></rect>`,
				float64(svgPadL)+float64(i)*bw, float64(height-svgPadB)-h, max(bw-0.5, 0.5), h, i*s.RateBinSeconds, v)
		}
		if s.Press != nil {
			px := x(*s.Press)
			pressID := "press" // the whole graph's; a link's is named after its graph
			if id != "rate" {
				pressID = id + "-press"
			}
			fmt.Fprintf(&b, `<line id="%s" class="press" x1="%.2f" y1="%d" x2="%.2f" y2="%d" stroke="#e53e3e" stroke-width="3"/>`, pressID, px, svgPadT-4, px, height-svgPadB)
			fmt.Fprintf(&b, `<text x="%.2f" y="%d" font-size="11" fill="#e53e3e">press</text>`, px+4, svgPadT+6)
		}
	}
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>`, svgPadL, height-svgPadB, svgW-10, height-svgPadB)
	fmt.Fprintf(&b, `<text x="4" y="%d" font-size="11">%d/bin</text>`, svgPadT+6, peak)
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11">0 s</text>`, svgPadL, height-4)
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11" text-anchor="end">%d s</text>`, svgW-10, height-4, n*s.RateBinSeconds)
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

var page = template.Must(template.New("report").Funcs(template.FuncMap{
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("15:04:05.000")
	},
	"day":  func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 MST") },
	"f1":   func(v float64) string { return fmt.Sprintf("%.1f", v) },
	"f3":   func(v float64) string { return fmt.Sprintf("%.3f", v) },
	"hex":  func(v uint32) string { return fmt.Sprintf("0x%08x", v) },
	"join": strings.Join,
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1a202c;max-width:1100px}
h1{font-size:1.4em;margin:0 0 .3em}h3{font-size:1em;margin:1em 0 .2em}h2{font-size:1.15em;margin:1.4em 0 .4em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.3em 0}td,th{padding:.2em .6em;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
th{background:#f3f4f6}.num{text-align:right;font-variant-numeric:tabular-nums}
#findings{border:2px solid #c53030;background:#fff5f5;padding:.5em 1em;margin:1em 0}
#findings.none{border-color:#2f855a;background:#f0fff4}
.error{color:#c53030;font-weight:600}.warning{color:#b7791f;font-weight:600}.info{color:#2c5282}
code{background:#edf2f7;padding:0 .3em;font-size:.92em}.note{color:#555}
</style></head><body>
<h1>{{.Title}}</h1>
<p>{{.S.Packets}} packets, {{.S.Bytes}} bytes{{if not .S.First.IsZero}}, {{day .S.First}} to {{ts .S.Last}}{{end}}{{with .S.Press}}; press at {{ts .}}{{end}}.</p>
{{range .S.Notes}}<p class="note"><b>Note:</b> {{.}}</p>{{end}}
{{if .S.Findings}}<div id="findings"><h2>Findings</h2>
<table><tr><th>what</th><th>first</th><th>last</th><th>Wireshark display filter</th></tr>
{{range .S.Findings}}<tr class="finding"><td class="{{.Severity}}">{{.Text}}</td><td>{{ts .First}}</td><td>{{ts .Last}}</td><td><code>{{.DisplayFilter}}</code></td></tr>
{{end}}</table></div>{{else}}<div id="findings" class="none"><h2>Findings</h2><p>Nothing wrong found in the window.</p></div>{{end}}
<h2>Traffic</h2>
{{.Rate}}
<p class="note">Packets per {{.S.RateBinSeconds}} s{{if .S.Press}}; the red line is the press{{end}}.{{if .S.SlicedPackets}} {{.S.SlicedPackets}} packets were sliced: {{.S.SliceNote}}{{end}}</p>
<table><tr><th>link</th><th>side</th><th class="num">packets</th><th class="num">bytes</th><th class="num">sliced</th><th>down inside the window</th></tr>
{{range .S.Links}}<tr class="link"><td>{{.Name}}</td><td>{{.Side}}</td><td class="num">{{.Packets}}</td><td class="num">{{.Bytes}}</td><td class="num">{{.SlicedPackets}}</td><td>{{range .Down}}<span class="error">{{ts .From}} to {{ts .To}} ({{.Duration}})</span> {{end}}</td></tr>{{end}}</table>
<p class="note">Capture drops inside the window: {{.S.CaptureDrops}}.{{if .S.Missing}} Missing: {{.S.Missing}} ({{.S.MissingReason}}).{{end}}</p>
<table><tr><th>top talkers</th><th class="num">packets sent</th><th class="num">bytes sent</th><th class="num">packets received</th><th class="num">bytes received</th></tr>
{{range .S.TopTalkers}}<tr><td>{{.Addr}}</td><td class="num">{{.PacketsSent}}</td><td class="num">{{.BytesSent}}</td><td class="num">{{.PacketsReceived}}</td><td class="num">{{.BytesReceived}}</td></tr>{{end}}</table>
{{range $i, $r := .LinkRates}}{{with index $.S.Links $i}}<h3>Link {{.Name}}{{with .Side}} ({{.}} side){{end}}</h3>
{{$r}}
<table><tr><th>top talkers on {{.Name}}</th><th class="num">packets sent</th><th class="num">bytes sent</th><th class="num">packets received</th><th class="num">bytes received</th></tr>
{{range .TopTalkers}}<tr><td>{{.Addr}}</td><td class="num">{{.PacketsSent}}</td><td class="num">{{.BytesSent}}</td><td class="num">{{.PacketsReceived}}</td><td class="num">{{.BytesReceived}}</td></tr>{{end}}</table>{{end}}
{{end}}
<h2>VoIP</h2>
<p>SIP: {{.S.SIP.Messages}} messages ({{.S.SIP.Malformed}} malformed), {{.S.SIP.Calls}} calls, {{.S.SIP.Failed}} failed. Final responses: {{range $k, $v := .S.SIP.Responses}}{{$k}}&times;{{$v}} {{end}}</p>
{{if .S.SIP.Dialogs}}<table><tr><th>Call-ID</th><th>from → to</th><th>methods</th><th>final</th><th class="num">setup ms</th><th>ended</th><th>verdict</th></tr>
{{range .S.SIP.Dialogs}}<tr><td><code>{{.CallID}}</code></td><td>{{.From}} → {{.To}}</td><td>{{join .Methods " "}}</td><td>{{.FinalCode}}</td><td class="num">{{f1 .SetupMs}}</td><td>{{.Ended}}</td><td>{{.Verdict}}</td></tr>
{{end}}</table>{{end}}
{{if .S.RTPStreams}}<table><tr><th>RTP stream</th><th>SSRC</th><th>codec</th><th class="num">packets</th><th class="num">lost</th><th class="num">out of order</th><th class="num">max delta ms</th><th class="num">max jitter ms</th><th class="num">mean jitter ms</th></tr>
{{range .S.RTPStreams}}<tr><td>{{.Src}} → {{.Dst}}</td><td><code>{{hex .SSRC}}</code></td><td>{{.Codec}} ({{.PayloadType}})</td><td class="num">{{.Packets}}</td><td class="num">{{.Lost}} ({{f1 .LostPercent}} %)</td><td class="num">{{.OutOfOrder}}</td><td class="num">{{f3 .MaxDeltaMs}}</td><td class="num">{{f3 .MaxJitterMs}}</td><td class="num">{{f3 .MeanJitterMs}}</td></tr>
{{end}}</table>{{end}}
{{if .S.RTCP.Packets}}<p>RTCP: {{.S.RTCP.Packets}} packets, {{.S.RTCP.SenderReports}} sender and {{.S.RTCP.ReceiverReports}} receiver reports; worst fraction lost reported {{f1 .S.RTCP.MaxFractionLost}} %.</p>{{end}}
<h2>DNS</h2>
<p>{{.S.DNS.Queries}} queries, {{.S.DNS.Responses}} responses, {{.S.DNS.Unanswered}} unanswered within 2 s{{if .S.DNS.PendingAtEnd}} ({{.S.DNS.PendingAtEnd}} sent in the last 2 s){{end}}, {{.S.DNS.Slow}} slower than 500 ms; median {{f1 .S.DNS.MedianMs}} ms, worst {{f1 .S.DNS.MaxMs}} ms. Response codes: {{range $k, $v := .S.DNS.Rcodes}}{{$k}}&times;{{$v}} {{end}}</p>
{{if .S.DNS.Servers}}<table><tr><th>server</th><th class="num">queries</th><th class="num">unanswered</th><th class="num">failures</th></tr>
{{range .S.DNS.Servers}}<tr><td>{{.Addr}}</td><td class="num">{{.Queries}}</td><td class="num">{{.Unanswered}}</td><td class="num">{{.Failures}}</td></tr>{{end}}</table>{{end}}
<h2>TCP</h2>
<p>{{.S.TCP.Connections}} connections opened, {{.S.TCP.Established}} established, {{.S.TCP.Failed}} failed; {{.S.TCP.Resets}} resets, {{.S.TCP.Retransmissions}} retransmissions, {{.S.TCP.OutOfOrder}} out of order, {{.S.TCP.ZeroWindows}} zero windows; handshake RTT median {{f1 .S.TCP.HandshakeMedMs}} ms, worst {{f1 .S.TCP.HandshakeMaxMs}} ms.</p>
{{if .S.TCP.Servers}}<table><tr><th>server</th><th class="num">connections</th><th class="num">failed</th><th class="num">retransmissions</th><th class="num">worst handshake ms</th></tr>
{{range .S.TCP.Servers}}<tr><td>{{.Addr}}</td><td class="num">{{.Connections}}</td><td class="num">{{.Failed}}</td><td class="num">{{.Retransmissions}}</td><td class="num">{{f1 .HandshakeMaxMs}}</td></tr>{{end}}</table>{{end}}
<h2>ICMP, DHCP, ARP</h2>
<p>ICMP: {{.S.ICMP.Unreachable}} unreachable, {{.S.ICMP.TTLExceeded}} TTL exceeded{{range .S.ICMP.BySource}}; {{.Addr}}: {{.Unreachable}}/{{.TTLExceeded}}{{end}}.
DHCP: {{.S.DHCP.Leases}} leases, {{.S.DHCP.NAKs}} NAKs, {{.S.DHCP.RenewFailures}} requests unanswered.
ARP: {{.S.ARP.Packets}} packets{{range .S.ARP.DuplicateClaims}}; duplicate: {{.}}{{end}}.</p>
<p class="note">Limits: {{.S.Limits.MaxRTPStreams}} RTP streams, {{.S.Limits.MaxSIPDialogs}} SIP dialogs, {{.S.Limits.MaxTCPConnections}} TCP connections, {{.S.Limits.MaxDNSQueries}} pending DNS queries, {{.S.Limits.MaxTalkers}} talkers.</p>
</body></html>
`))
