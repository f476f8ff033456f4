package dashboards

// The types below are the part of Grafana's dashboard JSON model that the
// dashboards use (https://grafana.com/docs/grafana/latest/dashboards/build-dashboards/view-dashboard-json-model/).
// They are typed so that a misspelt field is a compile error, not a
// setting Grafana silently ignores.

// schemaVersion is the dashboard schema of Grafana 11.0; later Grafana
// versions migrate it on load, and older ones back to 10.x import it.
const schemaVersion = 39

// datasourceVar is the datasource variable every panel and query uses, so
// that the dashboards import into any Grafana whatever its Prometheus
// data source is called.
const datasourceVar = "${datasource}"

type dashboard struct {
	Annotations          annotations `json:"annotations"`
	Description          string      `json:"description"`
	Editable             bool        `json:"editable"`
	FiscalYearStartMonth int         `json:"fiscalYearStartMonth"`
	GraphTooltip         int         `json:"graphTooltip"`
	Links                []link      `json:"links"`
	Panels               []*panel    `json:"panels"`
	Refresh              string      `json:"refresh"`
	SchemaVersion        int         `json:"schemaVersion"`
	Tags                 []string    `json:"tags"`
	Templating           templating  `json:"templating"`
	Time                 timeRange   `json:"time"`
	Timepicker           struct{}    `json:"timepicker"`
	Timezone             string      `json:"timezone"`
	Title                string      `json:"title"`
	// UID is fixed so that links and provisioning survive a re-import.
	// There is deliberately no id: Grafana assigns it per instance.
	UID     string `json:"uid"`
	Version int    `json:"version"`
}

type annotations struct {
	List []annotation `json:"list"`
}

type annotation struct {
	BuiltIn    int           `json:"builtIn"`
	Datasource datasourceRef `json:"datasource"`
	Enable     bool          `json:"enable"`
	Hide       bool          `json:"hide"`
	IconColor  string        `json:"iconColor"`
	Name       string        `json:"name"`
	Type       string        `json:"type"`
}

type link struct {
	AsDropdown  bool     `json:"asDropdown"`
	Icon        string   `json:"icon"`
	IncludeVars bool     `json:"includeVars"`
	KeepTime    bool     `json:"keepTime"`
	Tags        []string `json:"tags"`
	TargetBlank bool     `json:"targetBlank"`
	Title       string   `json:"title"`
	Type        string   `json:"type"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type templating struct {
	List []variable `json:"list"`
}

type variable struct {
	Name        string         `json:"name"`
	Label       string         `json:"label"`
	Description string         `json:"description,omitempty"`
	Type        string         `json:"type"`
	Datasource  *datasourceRef `json:"datasource,omitempty"`
	Query       string         `json:"query"`
	Definition  string         `json:"definition,omitempty"`
	// Refresh: 1 on dashboard load, 2 on time range change.
	Refresh    int      `json:"refresh"`
	Regex      string   `json:"regex"`
	Sort       int      `json:"sort"`
	IncludeAll bool     `json:"includeAll"`
	Multi      bool     `json:"multi"`
	AllValue   string   `json:"allValue,omitempty"`
	Current    current  `json:"current"`
	Options    []string `json:"options"`
	Hide       int      `json:"hide"`
}

type current struct {
	Selected bool     `json:"selected,omitempty"`
	Text     []string `json:"text,omitempty"`
	Value    []string `json:"value,omitempty"`
}

type timeRange struct {
	From string `json:"from"`
	To   string `json:"to"`
}

type panel struct {
	ID          int            `json:"id"`
	Type        string         `json:"type"`
	Title       string         `json:"title"`
	Description string         `json:"description,omitempty"`
	GridPos     gridPos        `json:"gridPos"`
	Datasource  *datasourceRef `json:"datasource,omitempty"`
	Targets     []target       `json:"targets,omitempty"`
	FieldConfig *fieldConfig   `json:"fieldConfig,omitempty"`
	// Options are the panel type's options: timeseriesOptions,
	// statOptions, stateTimelineOptions or heatmapOptions.
	Options any `json:"options,omitempty"`
	// Collapsed and Panels are a row's.
	Collapsed bool     `json:"collapsed,omitempty"`
	Panels    []*panel `json:"panels,omitempty"`
}

type gridPos struct {
	H int `json:"h"`
	W int `json:"w"`
	X int `json:"x"`
	Y int `json:"y"`
}

type target struct {
	Datasource   datasourceRef `json:"datasource"`
	EditorMode   string        `json:"editorMode"`
	Expr         string        `json:"expr"`
	Format       string        `json:"format,omitempty"`
	Instant      bool          `json:"instant,omitempty"`
	LegendFormat string        `json:"legendFormat"`
	Range        bool          `json:"range"`
	RefID        string        `json:"refId"`
}

type fieldConfig struct {
	Defaults  fieldDefaults   `json:"defaults"`
	Overrides []fieldOverride `json:"overrides"`
}

type fieldDefaults struct {
	Color      *fieldColor    `json:"color,omitempty"`
	Custom     any            `json:"custom,omitempty"`
	Decimals   *int           `json:"decimals,omitempty"`
	Mappings   []valueMapping `json:"mappings"`
	Max        *float64       `json:"max,omitempty"`
	Min        *float64       `json:"min,omitempty"`
	Thresholds thresholds     `json:"thresholds"`
	Unit       string         `json:"unit"`
}

type fieldColor struct {
	Mode string `json:"mode"`
}

type thresholds struct {
	Mode  string          `json:"mode"`
	Steps []thresholdStep `json:"steps"`
}

type thresholdStep struct {
	Color string `json:"color"`
	// Value is null for the base step.
	Value *float64 `json:"value"`
}

type valueMapping struct {
	Type    string                  `json:"type"`
	Options map[string]mappingValue `json:"options"`
}

type mappingValue struct {
	Color string `json:"color"`
	Index int    `json:"index"`
	Text  string `json:"text"`
}

type fieldOverride struct {
	Matcher    overrideMatcher    `json:"matcher"`
	Properties []overrideProperty `json:"properties"`
}

type overrideMatcher struct {
	ID      string `json:"id"`
	Options string `json:"options"`
}

type overrideProperty struct {
	ID    string `json:"id"`
	Value any    `json:"value"`
}

// timeseriesCustom are the field settings of a time series panel.
type timeseriesCustom struct {
	AxisSoftMin       *float64 `json:"axisSoftMin,omitempty"`
	DrawStyle         string   `json:"drawStyle"`
	FillOpacity       int      `json:"fillOpacity"`
	LineInterpolation string   `json:"lineInterpolation"`
	LineWidth         int      `json:"lineWidth"`
	ShowPoints        string   `json:"showPoints"`
	SpanNulls         bool     `json:"spanNulls"`
	Stacking          stacking `json:"stacking"`
}

type stacking struct {
	Group string `json:"group"`
	Mode  string `json:"mode"`
}

type legend struct {
	Calcs       []string `json:"calcs"`
	DisplayMode string   `json:"displayMode"`
	Placement   string   `json:"placement"`
	ShowLegend  bool     `json:"showLegend"`
	SortBy      string   `json:"sortBy,omitempty"`
	SortDesc    bool     `json:"sortDesc,omitempty"`
}

type tooltip struct {
	Mode string `json:"mode"`
	Sort string `json:"sort"`
}

type timeseriesOptions struct {
	Legend  legend  `json:"legend"`
	Tooltip tooltip `json:"tooltip"`
}

type reduceOptions struct {
	Calcs  []string `json:"calcs"`
	Fields string   `json:"fields"`
	Values bool     `json:"values"`
}

type statOptions struct {
	ColorMode     string        `json:"colorMode"`
	GraphMode     string        `json:"graphMode"`
	JustifyMode   string        `json:"justifyMode"`
	Orientation   string        `json:"orientation"`
	ReduceOptions reduceOptions `json:"reduceOptions"`
	TextMode      string        `json:"textMode"`
}

type stateTimelineOptions struct {
	AlignValue  string  `json:"alignValue"`
	Legend      legend  `json:"legend"`
	MergeValues bool    `json:"mergeValues"`
	RowHeight   float64 `json:"rowHeight"`
	ShowValue   string  `json:"showValue"`
	Tooltip     tooltip `json:"tooltip"`
}

type stateTimelineCustom struct {
	FillOpacity int `json:"fillOpacity"`
	LineWidth   int `json:"lineWidth"`
}

type heatmapOptions struct {
	Calculate    bool              `json:"calculate"`
	CellGap      int               `json:"cellGap"`
	Color        heatmapColor      `json:"color"`
	FilterValues heatmapFilter     `json:"filterValues"`
	Legend       heatmapLegend     `json:"legend"`
	RowsFrame    heatmapRowsFrame  `json:"rowsFrame"`
	Tooltip      heatmapTooltip    `json:"tooltip"`
	YAxis        heatmapYAxis      `json:"yAxis"`
	Exemplars    heatmapExemplars  `json:"exemplars"`
	CellValues   heatmapCellValues `json:"cellValues"`
	ShowValue    string            `json:"showValue"`
}

type heatmapColor struct {
	Exponent float64 `json:"exponent"`
	Fill     string  `json:"fill"`
	Mode     string  `json:"mode"`
	Reverse  bool    `json:"reverse"`
	Scale    string  `json:"scale"`
	Scheme   string  `json:"scheme"`
	Steps    int     `json:"steps"`
}

type heatmapFilter struct {
	Le float64 `json:"le"`
}

type heatmapLegend struct {
	Show bool `json:"show"`
}

type heatmapRowsFrame struct {
	Layout string `json:"layout"`
}

type heatmapTooltip struct {
	Mode           string `json:"mode"`
	ShowColorScale bool   `json:"showColorScale"`
	YHistogram     bool   `json:"yHistogram"`
}

type heatmapYAxis struct {
	AxisPlacement string `json:"axisPlacement"`
	Unit          string `json:"unit"`
}

type heatmapExemplars struct {
	Color string `json:"color"`
}

type heatmapCellValues struct {
	Unit string `json:"unit"`
}
