package activator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// MaxScrapeBytes bounds what a scrape reads of a pod's exposition; a
// larger one is an error (too_large), so that memory per pod is bounded.
const MaxScrapeBytes = 1 << 20

// The reasons of nemesis_activator_scrape_errors_total.
const (
	scrapeTimeout  = "timeout"
	scrapeTooLarge = "too_large"
	scrapeParse    = "parse"
	scrapeMissing  = "missing"
	scrapeHTTP     = "http"
)

// scrapeAccept asks for the Prometheus text format, which vLLM's
// prometheus_client serves by default, and takes OpenMetrics.
const scrapeAccept = "text/plain;version=0.0.4;q=0.9,application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.1"

// scraper runs one goroutine per ready endpoint of a score route, each
// scraping its pod every interval, one scrape at a time.
type scraper struct {
	p      *scorePolicy
	m      *routeInstruments
	client *http.Client
	logger *slog.Logger
	// families maps each family the spec names to its metric's index.
	families map[string]int

	mu      sync.Mutex
	stopped bool
	running map[*Endpoint]context.CancelFunc
	wg      sync.WaitGroup
}

func newScraper(p *scorePolicy, m *routeInstruments, client *http.Client, logger *slog.Logger) *scraper {
	s := &scraper{p: p, m: m, client: client, logger: logger, families: map[string]int{}, running: map[*Endpoint]context.CancelFunc{}}
	for i, sm := range p.spec.Metrics {
		s.families[sm.Family] = i
	}
	return s
}

// follow starts a scraper for each endpoint of ready that has none and
// stops those of endpoints no longer ready.
func (s *scraper) follow(ready []*Endpoint) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	for ep, cancel := range s.running {
		if !slices.Contains(ready, ep) {
			cancel()
			delete(s.running, ep)
			s.m.forgetScore(ep.addr)
		}
	}
	for _, ep := range ready {
		if _, ok := s.running[ep]; ok {
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		s.running[ep] = cancel
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.loop(ctx, ep)
		}()
	}
}

// stop ends every scraper and waits for them.
func (s *scraper) stop() {
	s.mu.Lock()
	s.stopped = true
	for ep, cancel := range s.running {
		cancel()
		delete(s.running, ep)
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// scrapeURL is the address scraped for ep.
func (s *scraper) scrapeURL(ep *Endpoint) string {
	sp := s.p.spec.Scrape
	host := ep.addr
	if sp.Port != 0 {
		host = net.JoinHostPort(ep.ip, strconv.Itoa(sp.Port))
	}
	return "http://" + host + sp.Path
}

// loop scrapes ep every interval until ctx ends. The first scrape comes
// at once, so that a new pod is scored as soon as possible; the ticker
// starts at a random phase so that the pods' scrapes spread out. A pod
// that starts or stops failing is logged once, not at every scrape.
func (s *scraper) loop(ctx context.Context, ep *Endpoint) {
	url := s.scrapeURL(ep)
	var buf bytes.Buffer
	failing := false
	scrape := func() {
		reason, err := s.once(ctx, ep, url, &buf)
		switch {
		case ctx.Err() != nil:
		case err != nil && !failing:
			failing = true
			s.logger.Warn("scraping a pod of a score route failed: scoring it on its requests in flight until a good scrape",
				"route", s.p.route, "endpoint", ep.addr, "reason", reason, "err", err)
		case err == nil && failing:
			failing = false
			s.logger.Info("scraping a pod of a score route works again", "route", s.p.route, "endpoint", ep.addr)
		}
	}
	scrape()
	interval := s.p.spec.Scrape.Interval
	jitter := time.NewTimer(rand.N(interval))
	select {
	case <-ctx.Done():
		jitter.Stop()
		return
	case <-jitter.C:
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		scrape()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// once scrapes ep and stores the result (or the failure) for the policy.
func (s *scraper) once(ctx context.Context, ep *Endpoint, url string, buf *bytes.Buffer) (string, error) {
	p := s.p
	sc := &podScrape{owner: p, at: p.now(), sentBase: ep.started.Load()}
	vals, reason, err := s.fetch(ctx, url, buf)
	if ctx.Err() != nil {
		return "", nil // stopping: not the pod's fault
	}
	if buf.Cap() > 64<<10 {
		*buf = bytes.Buffer{} // keep no large buffer between scrapes
	}
	if err != nil {
		s.m.scrapeError(ep.addr, reason)
	} else {
		sc.vals = vals
	}
	ep.scrape.Store(sc)
	fp := p.frames.Get().(*[]float64)
	c, _ := p.rate(ep, *fp, p.now(), true)
	p.frames.Put(fp)
	s.m.setScore(ep.addr, c.score)
	return reason, err
}

// fetch gets and parses one exposition.
func (s *scraper) fetch(ctx context.Context, url string, buf *bytes.Buffer) ([]float64, string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.p.spec.Scrape.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, scrapeHTTP, err
	}
	req.Header.Set("Accept", scrapeAccept)
	resp, err := s.client.Do(req)
	if err != nil {
		if ctx.Err() != nil || isTimeout(err) {
			return nil, scrapeTimeout, err
		}
		return nil, scrapeHTTP, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, scrapeHTTP, fmt.Errorf("%s answered %s", url, resp.Status)
	}
	buf.Reset()
	if _, err := buf.ReadFrom(io.LimitReader(resp.Body, MaxScrapeBytes+1)); err != nil {
		if ctx.Err() != nil || isTimeout(err) {
			return nil, scrapeTimeout, err
		}
		return nil, scrapeHTTP, err
	}
	if buf.Len() > MaxScrapeBytes {
		return nil, scrapeTooLarge, fmt.Errorf("the exposition is larger than %d bytes", MaxScrapeBytes)
	}
	openMetrics := expfmt.ResponseFormat(resp.Header).FormatType() == expfmt.TypeOpenMetrics
	vals, err := parseExposition(buf.Bytes(), openMetrics, s.families, len(s.p.spec.Metrics))
	if err != nil {
		var me *missingError
		if errors.As(err, &me) {
			return nil, scrapeMissing, err
		}
		return nil, scrapeParse, err
	}
	return vals, "", nil
}

// missingError says a named family is not in the exposition.
type missingError struct{ family string }

func (e *missingError) Error() string {
	return fmt.Sprintf("the exposition has no metric family %s", e.family)
}

// parseExposition reads the families named in families (family → index)
// out of an exposition in the Prometheus text format or, if openMetrics,
// in OpenMetrics: each value is the sum of the family's series. A
// histogram or summary F is read as F_sum and F_count; a counter (or an
// untyped family, as every family of OpenMetrics is here) may be named
// with or without _total.
func parseExposition(data []byte, openMetrics bool, families map[string]int, n int) ([]float64, error) {
	if openMetrics {
		data = openMetricsToText(data)
	}
	return readFamilies(keepFamilies(data, familyBases(families)), families, n)
}

// readFamilies is parseExposition on the text format.
func readFamilies(data []byte, families map[string]int, n int) ([]float64, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	vals := make([]float64, n)
	found := make([]bool, n)
	add := func(name string, v float64) {
		if i, ok := families[name]; ok {
			vals[i] += v
			found[i] = true
		}
	}
	for name, mf := range fams {
		for _, m := range mf.GetMetric() {
			switch mf.GetType() {
			case dto.MetricType_COUNTER, dto.MetricType_UNTYPED:
				v := m.GetCounter().GetValue()
				if mf.GetType() == dto.MetricType_UNTYPED {
					v = m.GetUntyped().GetValue()
				}
				add(name, v)
				if base, ok := strings.CutSuffix(name, "_total"); ok {
					add(base, v)
				} else {
					add(name+"_total", v)
				}
			case dto.MetricType_GAUGE:
				add(name, m.GetGauge().GetValue())
			case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
				add(name+"_sum", m.GetHistogram().GetSampleSum())
				add(name+"_count", float64(m.GetHistogram().GetSampleCount()))
			case dto.MetricType_SUMMARY:
				add(name+"_sum", m.GetSummary().GetSampleSum())
				add(name+"_count", float64(m.GetSummary().GetSampleCount()))
			}
		}
	}
	for fam, i := range families {
		if !found[i] {
			return nil, &missingError{family: fam}
		}
		if math.IsNaN(vals[i]) {
			return nil, fmt.Errorf("metric family %s is NaN", fam)
		}
	}
	return vals, nil
}

// familyBases returns the names of the named families without a _total,
// _sum or _count suffix: every family a named metric is read from (the
// family itself, its counter with or without _total, the histogram or
// summary of its _sum or _count) has a name that starts with one of them.
func familyBases(families map[string]int) []string {
	bases := make([]string, 0, len(families))
	for fam := range families {
		base := fam
		for _, suffix := range []string{"_total", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(fam, suffix); ok {
				base = b
				break
			}
		}
		bases = append(bases, base)
	}
	return bases
}

// keepFamilies returns the lines of an exposition in the text format
// that may belong to a family named by one of bases, so that the parser
// reads the few families a score uses, not a model server's whole
// exposition with its dozens of histograms: on a busy activator, parsing
// them all at every scrape of every pod cost more CPU than the picks.
// Each line of a family (HELP, TYPE, and samples with their _bucket,
// _sum, _count or _total) starts with the family's name, so a line is
// dropped only when its name, plainly written, neither starts with a base
// nor begins one: every family that a named metric is read from stays
// whole and is read as it would be in the whole exposition, and a family
// none is read from keeps its TYPE line whenever a sample of it stays
// (so x_bucket stays a bucket of histogram x). Comments and empty lines
// go; a line whose name is quoted or cannot be told stays, for the parser
// to judge. A malformed line of a family no metric is read from is no
// longer seen, so it fails no scrape.
func keepFamilies(data []byte, bases []string) []byte {
	var out []byte
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i+1], data[i+1:]
		} else {
			data = nil
		}
		name, ok := lineFamily(line)
		if !ok {
			continue
		}
		if name != nil && !relatedName(name, bases) {
			continue
		}
		out = append(out, line...)
		if line[len(line)-1] != '\n' {
			out = append(out, '\n')
		}
	}
	return out
}

// lineFamily returns the metric name a line of the text format is about:
// a sample's, or a HELP or TYPE comment's. ok is false for a line the
// parser ignores (blank, or another comment); name is nil when the name
// is quoted or missing.
func lineFamily(line []byte) (name []byte, ok bool) {
	line = bytes.TrimLeft(line, " \t")
	if len(line) == 0 || line[0] == '\n' || line[0] == '\r' {
		return nil, false
	}
	if line[0] == '#' {
		line = bytes.TrimLeft(line[1:], " \t")
		rest, help := bytes.CutPrefix(line, []byte("HELP"))
		if !help {
			if rest, ok = bytes.CutPrefix(line, []byte("TYPE")); !ok {
				return nil, false
			}
		}
		line = bytes.TrimLeft(rest, " \t")
		if len(rest) == len(line) && len(line) > 0 && line[0] != '\n' && line[0] != '\r' {
			return nil, false // #HELPER: a comment
		}
	}
	end := 0
	for end < len(line) && isNameByte(line[end]) {
		end++
	}
	if end == 0 {
		return nil, true
	}
	return line[:end], true
}

// isNameByte reports whether c may be part of a plainly written metric
// name.
func isNameByte(c byte) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// relatedName reports whether name starts with one of bases or is the
// start of one.
func relatedName(name []byte, bases []string) bool {
	for _, b := range bases {
		n := min(len(name), len(b))
		if string(name[:n]) == b[:n] {
			return true
		}
	}
	return false
}

// openMetricsToText turns OpenMetrics into what the text format's parser
// reads: metadata lines (whose counter names lack _total) and # EOF go,
// and each sample keeps its name, labels and value, without timestamp or
// exemplar. Every family is then untyped, named as its samples are.
func openMetricsToText(data []byte) []byte {
	var out []byte
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		// The value is the first field after the name and the labels,
		// whose quoted values may hold spaces, '#' and '}'.
		end := sampleValueEnd(line)
		out = append(out, line[:end]...)
		out = append(out, '\n')
	}
	return out
}

// sampleValueEnd returns where the value of a sample line ends.
func sampleValueEnd(line []byte) int {
	i := 0
	inLabels, inQuote := false, false
	for ; i < len(line); i++ {
		c := line[i]
		switch {
		case inQuote:
			if c == '\\' {
				i++
			} else if c == '"' {
				inQuote = false
			}
		case c == '"':
			inQuote = true
		case c == '{':
			inLabels = true
		case c == '}':
			inLabels = false
		case c == ' ' && !inLabels:
			// The value follows; it ends at the next space.
			j := i + 1
			for j < len(line) && line[j] == ' ' {
				j++
			}
			for j < len(line) && line[j] != ' ' {
				j++
			}
			return j
		}
	}
	return len(line)
}
