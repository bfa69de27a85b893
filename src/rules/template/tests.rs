use super::*;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

const EXT_URL: &str = "http://testhost:9090/path/prefix";

/// Expands `text` with value 1.5, a few labels and no query engine.
fn run(text: &str) -> Result<String, TemplateError> {
    run_value(text, 1.5)
}

fn run_value(text: &str, value: f64) -> Result<String, TemplateError> {
    let l = labels(&[("instance", "host1:9100"), ("job", "node")]);
    let e = labels(&[("cluster", "eu1")]);
    let ctx = TemplateContext {
        labels: &l,
        external_labels: &e,
        external_url: EXT_URL,
        value,
    };
    expand("test", text, &ctx, None)
}

fn ok(text: &str) -> String {
    match run(text) {
        Ok(s) => s,
        Err(e) => panic!("{text:?} failed: {e}"),
    }
}

fn with_query(text: &str, result: Vec<QuerySample>) -> Result<String, TemplateError> {
    let l = labels(&[("instance", "a")]);
    let e = Labels::default();
    let ctx = TemplateContext {
        labels: &l,
        external_labels: &e,
        external_url: EXT_URL,
        value: 0.0,
    };
    let hook = move |_q: &str| -> Result<Vec<QuerySample>, String> { Ok(result.clone()) };
    expand("test", text, &ctx, Some(&hook))
}

fn sample(pairs: &[(&str, &str)], value: f64) -> QuerySample {
    QuerySample {
        labels: labels(pairs),
        value,
    }
}

/// Each input is fed through `{{ range . }}`-like per-value calls.
fn each(func: &str, inputs: &[&str]) -> String {
    inputs
        .iter()
        .map(|i| ok(&format!("{{{{ {func} {i} }}}}:")))
        .collect()
}

#[test]
fn plain_text_is_returned_unchanged() {
    assert_eq!(ok("plain text"), "plain text");
    assert_eq!(ok(""), "");
    // Not parsed at all: an invalid action-like text without "{{" is fine.
    assert_eq!(ok("}} {"), "}} {");
    assert_eq!(check_syntax("no template here"), Ok(()));
}

#[test]
fn simple_values() {
    assert_eq!(ok("{{ 1 }}"), "1");
    assert_eq!(ok(r#"{{ "<b>" }}"#), "<b>");
    assert_eq!(ok("{{ true }}"), "true");
}

#[test]
fn labels_value_and_external_labels() {
    assert_eq!(
        ok("{{ $labels.instance }} of {{ $labels.job }} is {{ $value }}"),
        "host1:9100 of node is 1.5"
    );
    assert_eq!(ok("{{ .Labels.job }}/{{ .Value }}"), "node/1.5");
    assert_eq!(ok("{{ $externalLabels.cluster }}"), "eu1");
    assert_eq!(ok("{{ .ExternalLabels.cluster }}"), "eu1");
    assert_eq!(ok("{{ $externalURL }}"), EXT_URL);
    assert_eq!(ok("{{ index $labels \"job\" }}"), "node");
    assert_eq!(ok("{{ $labels.job | toUpper }}"), "NODE");
    assert_eq!(ok("{{ len $labels }}"), "2");
}

#[test]
fn missing_label_is_empty() {
    assert_eq!(ok("[{{ $labels.nope }}]"), "[]");
    assert_eq!(ok("[{{ $externalLabels.nope }}]"), "[]");
    assert_eq!(ok("[{{ index $labels \"nope\" }}]"), "[]");
    assert_eq!(ok("[{{ $labels.nope | toUpper }}]"), "[]");
    assert_eq!(ok("{{ if $labels.nope }}yes{{ else }}no{{ end }}"), "no");
    assert_eq!(ok("{{ with $labels.job }}{{ . }}{{ end }}"), "node");
    assert_eq!(ok(r#"{{ eq $labels.nope "" }}"#), "true");
    assert_eq!(ok(r#"[{{ printf "%s" $labels.nope }}]"#), "[]");
}

#[test]
fn unknown_field_of_data_is_an_error() {
    let e = run("{{ .Foo }}").unwrap_err();
    assert!(matches!(e, TemplateError::Execute { .. }), "{e}");
    assert!(e.to_string().contains("can't evaluate field Foo"), "{e}");
}

#[test]
fn value_prints_like_go() {
    let cases: &[(f64, &str)] = &[
        (1.0, "1"),
        (0.5, "0.5"),
        (-0.5, "-0.5"),
        (100000.0, "100000"),
        (1e6, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (1e21, "1e+21"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (123.456, "123.456"),
        (1353755652.0, "1.353755652e+09"),
        (f64::INFINITY, "+Inf"),
        (f64::NEG_INFINITY, "-Inf"),
        (f64::NAN, "NaN"),
        (0.0, "0"),
        (-0.0, "-0"),
        (0.1 + 0.2, "0.30000000000000004"),
    ];
    for (v, want) in cases {
        assert_eq!(run_value("{{ $value }}", *v).unwrap(), *want, "value {v}");
    }
}

#[test]
fn humanize() {
    assert_eq!(
        each("humanize", &["0.0", "1.0", "1234567.0", ".12"]),
        "0:1:1.235M:120m:"
    );
    assert_eq!(
        each(
            "humanize",
            &[r#""0.0""#, r#""1.0""#, r#""1234567.0""#, r#"".12""#]
        ),
        "0:1:1.235M:120m:"
    );
    assert_eq!(
        each(
            "humanize",
            &["0", "-1", "1", "1234567", "9223372036854775807"]
        ),
        "0:-1:1:1.235M:9.223E:"
    );
    assert_eq!(each("humanize", &["18446744073709551615"]), "18.45E:");
    assert_eq!(ok("{{ humanize 1234567 }}"), "1.235M");
    assert_eq!(ok("{{ humanize 0.0012 }}"), "1.2m");
    assert_eq!(ok("{{ humanize 0 }}"), "0");
    assert_eq!(
        run_value("{{ $value | humanize }}", 1234567.0).unwrap(),
        "1.235M"
    );
    assert_eq!(
        run_value("{{ humanize $value }}", -0.0012).unwrap(),
        "-1.2m"
    );
    assert_eq!(run_value("{{ humanize $value }}", 1e-30).unwrap(), "1e-06y");
    let e = run(r#"{{ humanize "one" }}"#).unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"error executing template test: error calling humanize: strconv.ParseFloat: parsing "one": invalid syntax"#
    );
}

#[test]
fn humanize1024() {
    assert_eq!(
        each("humanize1024", &["0.0", "1.0", "1048576.0", ".12"]),
        "0:1:1Mi:0.12:"
    );
    assert_eq!(
        each(
            "humanize1024",
            &[r#""0.0""#, r#""1.0""#, r#""1048576.0""#, r#"".12""#]
        ),
        "0:1:1Mi:0.12:"
    );
    assert_eq!(
        each(
            "humanize1024",
            &["0", "-1", "1", "1234567", "9223372036854775807"]
        ),
        "0:-1:1:1.177Mi:8Ei:"
    );
    assert_eq!(each("humanize1024", &["18446744073709551615"]), "16Ei:");
    assert_eq!(ok("{{ humanize1024 1048576 }}"), "1Mi");
    assert!(
        run(r#"{{ humanize1024 "one" }}"#)
            .unwrap_err()
            .to_string()
            .contains(
                r#"error calling humanize1024: strconv.ParseFloat: parsing "one": invalid syntax"#
            )
    );
}

#[test]
fn humanize_duration() {
    let floats = [
        "0", "1", "60", "3600", "86400", "90000", "-183845", "899.99",
    ];
    assert_eq!(
        floats
            .iter()
            .map(|v| run_value("{{ humanizeDuration $value }}:", v.parse().unwrap()).unwrap())
            .collect::<String>(),
        "0s:1s:1m 0s:1h 0m 0s:1d 0h 0m 0s:1d 1h 0m 0s:-2d 3h 4m 5s:14m 59s:"
    );
    assert_eq!(
        each(
            "humanizeDuration",
            &[r#""0""#, r#""1""#, r#""60""#, r#""3600""#, r#""86400""#]
        ),
        "0s:1s:1m 0s:1h 0m 0s:1d 0h 0m 0s:"
    );
    assert_eq!(
        each(
            "humanizeDuration",
            &[".1", ".0001", ".12345", "60.1", "60.5", "1.2345", "12.345"]
        ),
        "100ms:100us:123.5ms:1m 0s:1m 0s:1.234s:12.35s:"
    );
    assert_eq!(
        each(
            "humanizeDuration",
            &[
                r#"".1""#,
                r#"".0001""#,
                r#"".12345""#,
                r#""60.1""#,
                r#""60.5""#,
                r#""1.2345""#,
                r#""12.345""#
            ]
        ),
        "100ms:100us:123.5ms:1m 0s:1m 0s:1.234s:12.35s:"
    );
    assert_eq!(
        each("humanizeDuration", &["0", "-1", "1", "1234567"]),
        "0s:-1s:1s:14d 6h 56m 7s:"
    );
    assert_eq!(ok("{{ humanizeDuration 3661 }}"), "1h 1m 1s");
    assert_eq!(ok("{{ humanizeDuration 0.5 }}"), "500ms");
    assert!(run(r#"{{ humanizeDuration "one" }}"#).is_err());
}

#[test]
fn humanize_inf_and_nan() {
    let t = "{{ humanize $value }}:{{ humanize1024 $value }}:{{ humanizeDuration $value }}:{{ humanizeTimestamp $value }}:";
    let got: String = [f64::INFINITY, f64::NEG_INFINITY, f64::NAN]
        .iter()
        .map(|v| run_value(t, *v).unwrap())
        .collect();
    assert_eq!(
        got,
        "+Inf:+Inf:+Inf:+Inf:-Inf:-Inf:-Inf:-Inf:NaN:NaN:NaN:NaN:"
    );
    assert_eq!(
        each("humanize", &[r#""+Inf""#, r#""-Inf""#, r#""NaN""#]),
        "+Inf:-Inf:NaN:"
    );
}

#[test]
fn humanize_percentage() {
    assert_eq!(
        ok(
            "{{ -0.22222 | humanizePercentage }}:{{ 0.0 | humanizePercentage }}:{{ 0.1234567 | humanizePercentage }}:{{ 1.23456 | humanizePercentage }}"
        ),
        "-22.22%:0%:12.35%:123.5%"
    );
    assert_eq!(
        ok(
            r#"{{ "-0.22222" | humanizePercentage }}:{{ "0.0" | humanizePercentage }}:{{ "0.1234567" | humanizePercentage }}:{{ "1.23456" | humanizePercentage }}"#
        ),
        "-22.22%:0%:12.35%:123.5%"
    );
    assert_eq!(
        each(
            "humanizePercentage",
            &["0", "-1", "1", "1234567", "9223372036854775807"]
        ),
        "0%:-100%:100%:1.235e+08%:9.223e+20%:"
    );
    assert_eq!(
        each("humanizePercentage", &["18446744073709551615"]),
        "1.845e+21%:"
    );
    assert_eq!(ok("{{ humanizePercentage 0.1234 }}"), "12.34%");
    assert!(run(r#"{{ "one" | humanizePercentage }}"#).unwrap_err().to_string().contains(
        r#"error calling humanizePercentage: strconv.ParseFloat: parsing "one": invalid syntax"#
    ));
}

#[test]
fn humanize_timestamp() {
    assert_eq!(
        each(
            "humanizeTimestamp",
            &["0", "-1", "1", "1234567", "9223372036"]
        ),
        "1970-01-01 00:00:00 +0000 UTC:1969-12-31 23:59:59 +0000 UTC:1970-01-01 00:00:01 +0000 UTC:1970-01-15 06:56:07 +0000 UTC:2262-04-11 23:47:16 +0000 UTC:"
    );
    assert_eq!(
        ok("{{ 1435065584.128 | humanizeTimestamp }}"),
        "2015-06-23 13:19:44.128 +0000 UTC"
    );
    assert_eq!(
        ok(r#"{{ "1435065584.128" | humanizeTimestamp }}"#),
        "2015-06-23 13:19:44.128 +0000 UTC"
    );
    assert_eq!(
        run_value("{{ humanizeTimestamp $value }}", 1435065584.128).unwrap(),
        "2015-06-23 13:19:44.128 +0000 UTC"
    );
    assert_eq!(
        run_value("{{ humanizeTimestamp $value }}", -0.5).unwrap(),
        "1969-12-31 23:59:59.5 +0000 UTC"
    );
    let e = run("{{ humanizeTimestamp -9223372036854775808 }}").unwrap_err();
    assert!(e.to_string().ends_with(
        "error calling humanizeTimestamp: -9.223372036854776e+18 cannot be represented as a nanoseconds timestamp since it overflows int64"
    ), "{e}");
    let e = run("{{ humanizeTimestamp 18446744073709551615 }}").unwrap_err();
    assert!(e.to_string().ends_with(
        "1.8446744073709552e+19 cannot be represented as a nanoseconds timestamp since it overflows int64"
    ), "{e}");
}

#[test]
fn string_functions() {
    assert_eq!(ok(r#"{{ "aa bb CC" | title }}"#), "Aa Bb CC");
    assert_eq!(
        ok(r#"{{ "hello-world foo.bar it's 1st ß" | title }}"#),
        "Hello-World Foo.bar It's 1St Ss"
    );
    assert_eq!(ok(r#"{{ "aa bb CC" | toUpper }}"#), "AA BB CC");
    assert_eq!(ok(r#"{{ "aA bB CC" | toLower }}"#), "aa bb cc");
    assert_eq!(ok(r#"{{ "<b>" | safeHtml }}"#), "<b>");
    assert_eq!(
        ok(r#"{{ html "<a href='x'>&" }}"#),
        "&lt;a href=&#39;x&#39;&gt;&amp;"
    );
    assert_eq!(ok(r#"{{ js "it's <x>" }}"#), r"it\'s \u003Cx\u003E");
    assert_eq!(ok(r#"{{ urlquery "a b&c" }}"#), "a+b%26c");
    assert_eq!(
        ok(r#"{{ urlQueryEscape "up{job=\"a b\"}" }}"#),
        "up%7Bjob%3D%22a+b%22%7D"
    );
}

#[test]
fn regex_functions() {
    assert_eq!(
        ok(r#"{{ match "a+" "aa" }} {{ match "a+" "b" }}"#),
        "true false"
    );
    // Unanchored, like regexp.MatchString.
    assert_eq!(ok(r#"{{ match "b" "abc" }}"#), "true");
    assert_eq!(ok(r#"{{ reReplaceAll "(a)b" "x$1" "ab" }}"#), "xa");
    assert_eq!(
        ok(r#"{{ reReplaceAll "(.*):.*" "$1" $labels.instance }}"#),
        "host1"
    );
    assert_eq!(
        ok(r#"{{ reReplaceAll "(?P<h>[^:]+):(\\d+)" "${h} port $2" $labels.instance }}"#),
        "host1 port 9100"
    );
    // Go's \d is ASCII-only.
    assert_eq!(ok(r#"{{ match "^\\d+$" "١٢" }}"#), "false");
    assert_eq!(ok(r#"{{ match "^[\\d]+$" "42" }}"#), "true");
    // A '[' inside a class is a literal in Go.
    assert_eq!(ok(r#"{{ match "^[[a]+$" "[a[" }}"#), "true");
    assert_eq!(ok(r#"{{ match "^[[:digit:]x]+$" "1x2" }}"#), "true");
    let e = run(r#"{{ match "(" "x" }}"#).unwrap_err();
    assert!(
        e.to_string()
            .contains("error calling match: error parsing regexp"),
        "{e}"
    );
    assert!(run(r#"{{ reReplaceAll "(" "x" "y" }}"#).is_err());
}

#[test]
fn strip_port_and_domain() {
    let cases = [
        ("foo.example.com", "foo.example.com", "foo"),
        ("foo.example.com:12345", "foo.example.com", "foo:12345"),
        ("192.0.2.1", "192.0.2.1", "192.0.2.1"),
        ("192.0.2.1:12345", "192.0.2.1", "192.0.2.1:12345"),
        ("2001:0DB8::1", "2001:0DB8::1", "2001:0DB8::1"),
        (
            "[2001:0DB8::1]:12345",
            "2001:0DB8::1",
            "[2001:0DB8::1]:12345",
        ),
        (
            "[2001:0DB8::1]::12345",
            "[2001:0DB8::1]::12345",
            "[2001:0DB8::1]::12345",
        ),
    ];
    for (input, port, domain) in cases {
        assert_eq!(
            ok(&format!("{{{{ {input:?} | stripPort }}}}")),
            port,
            "{input}"
        );
        assert_eq!(
            ok(&format!("{{{{ {input:?} | stripDomain }}}}")),
            domain,
            "{input}"
        );
    }
    assert_eq!(ok("{{ $labels.instance | stripPort }}"), "host1");
}

#[test]
fn links_and_urls() {
    assert_eq!(ok(r#"{{ graphLink "up" }}"#), "/graph?g0.expr=up&g0.tab=0");
    assert_eq!(ok(r#"{{ tableLink "up" }}"#), "/graph?g0.expr=up&g0.tab=1");
    assert_eq!(
        ok(r#"{{ graphLink "rate(x[5m]) > 0" }}"#),
        "/graph?g0.expr=rate%28x%5B5m%5D%29+%3E+0&g0.tab=0"
    );
    assert_eq!(ok("{{ pathPrefix }}"), "/path/prefix");
    assert_eq!(ok("{{ externalURL }}"), EXT_URL);
    assert_eq!(url_path("http://h:9090"), "");
    assert_eq!(url_path("https://h/a%20b/?x=1#f"), "/a b/");
    assert_eq!(url_path("/relative/p"), "/relative/p");
}

#[test]
fn parse_duration() {
    assert_eq!(
        ok(r#"{{ printf "%0.2f" (parseDuration "1h2m10ms") }}"#),
        "3720.01"
    );
    assert_eq!(
        ok(r#"{{ printf "%0.2f" (parseDuration "-1h2m10ms") }}"#),
        "-3720.01"
    );
    assert_eq!(ok(r#"{{ parseDuration "1d" }}"#), "86400");
    assert_eq!(ok(r#"{{ parseDuration "0" }}"#), "0");
    assert_eq!(
        ok(r#"{{ parseDuration "90s" | humanizeDuration }}"#),
        "1m 30s"
    );
    let e = run(r#"{{ parseDuration "1x" }}"#).unwrap_err();
    assert!(
        e.to_string()
            .ends_with(r#"unknown unit "x" in duration "1x""#),
        "{e}"
    );
    let e = run(r#"{{ parseDuration "1m1h" }}"#).unwrap_err();
    assert!(
        e.to_string()
            .ends_with(r#"not a valid duration string: "1m1h""#),
        "{e}"
    );
    assert!(
        run(r#"{{ parseDuration "" }}"#)
            .unwrap_err()
            .to_string()
            .ends_with("empty duration string")
    );
}

#[test]
fn args_and_define() {
    assert_eq!(
        ok(r#"{{define "x"}}{{.arg0}} {{.arg1}}{{end}}{{template "x" (args 1 "2")}}"#),
        "1 2"
    );
    assert_eq!(
        ok(r#"{{define "inst"}}{{ .instance }}{{end}}{{template "inst" $labels}}"#),
        "host1:9100"
    );
}

#[test]
fn query_first_value_label() {
    let up = vec![sample(&[("__name__", "metric"), ("instance", "a")], 11.0)];
    assert_eq!(
        with_query(
            r#"{{ query "metric{instance='a'}" | first | value }}"#,
            up.clone()
        )
        .unwrap(),
        "11"
    );
    assert_eq!(
        with_query(
            r#"{{ query "1.5" | first | value }}"#,
            vec![sample(&[], 1.5)]
        )
        .unwrap(),
        "1.5"
    );
    assert_eq!(
        with_query(
            r#"{{ query "metric" | first | label "instance" }}"#,
            up.clone()
        )
        .unwrap(),
        "a"
    );
    assert_eq!(
        with_query(
            r#"[{{ query "metric" | first | label "foo" }}]"#,
            up.clone()
        )
        .unwrap(),
        "[]"
    );
    assert_eq!(
        with_query(
            r#"[{{ $x := query "metric" | first }}{{ $x.Labels.foo }}]"#,
            up.clone()
        )
        .unwrap(),
        "[]"
    );
    assert_eq!(
        with_query(
            r#"{{ query "metric" | first | strvalue }}"#,
            vec![sample(&[("__value__", "a")], 11.0)]
        )
        .unwrap(),
        "a"
    );
    assert_eq!(
        with_query(
            r#"{{ with query "up" }}{{ . | first | value | humanize }}{{ end }}"#,
            vec![sample(&[], 1234567.0)]
        )
        .unwrap(),
        "1.235M"
    );
    assert_eq!(
        with_query(r#"{{ with query "up" }}yes{{ else }}none{{ end }}"#, vec![]).unwrap(),
        "none"
    );
    // The query text reaches the hook; labels of the alert can build it.
    let l = labels(&[("instance", "h:1")]);
    let e = Labels::default();
    let ctx = TemplateContext {
        labels: &l,
        external_labels: &e,
        external_url: "",
        value: 0.0,
    };
    let hook = |q: &str| -> Result<Vec<QuerySample>, String> { Ok(vec![sample(&[("q", q)], 1.0)]) };
    assert_eq!(
        expand("t", r#"{{ with printf "up{instance=%q}" $labels.instance | query }}{{ . | first | label "q" }}{{ end }}"#, &ctx, Some(&hook)).unwrap(),
        r#"up{instance="h:1"}"#
    );
}

#[test]
fn range_and_sort_by_label() {
    let res = vec![
        sample(&[("__name__", "metric"), ("instance", "b")], 21.0),
        sample(&[("__name__", "metric"), ("instance", "a")], 11.0),
    ];
    assert_eq!(
        with_query(
            r#"{{ range query "metric" | sortByLabel "instance" }}{{.Labels.instance}}:{{.Value}}: {{end}}"#,
            res.clone()
        )
        .unwrap(),
        "a:11: b:21: "
    );
    assert_eq!(
        with_query(
            r#"{{ range query "up" }}{{ .Labels.instance }} {{ .Value }};{{ end }}"#,
            res.clone()
        )
        .unwrap(),
        "b 21;a 11;"
    );
    assert_eq!(
        with_query(
            r#"{{ range $i, $s := query "up" }}{{ $i }}={{ $s | value }} {{ end }}"#,
            res
        )
        .unwrap(),
        "0=21 1=11 "
    );
}

#[test]
fn query_errors() {
    let e = with_query(r#"{{ query "missing" | first }}"#, vec![]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "error executing template test: error calling first: first() called on vector with no elements"
    );
    assert!(with_query(r#"{{ (query "missing").banana }}"#, vec![]).is_err());
    // No hook installed.
    let e = run(r#"{{ query "up" }}"#).unwrap_err();
    assert!(e.to_string().contains("error calling query"), "{e}");
    // A failing hook.
    let l = Labels::default();
    let ctx = TemplateContext {
        labels: &l,
        external_labels: &l,
        external_url: "",
        value: 0.0,
    };
    let hook =
        |_: &str| -> Result<Vec<QuerySample>, String> { Err("parse error at char 3".into()) };
    let e = expand("t", r#"{{ query "up{" }}"#, &ctx, Some(&hook)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "error executing template t: error calling query: parse error at char 3"
    );
}

#[test]
fn hook_is_removed_after_expansion_and_nesting_works() {
    let l = Labels::default();
    let ctx = TemplateContext {
        labels: &l,
        external_labels: &l,
        external_url: "",
        value: 0.0,
    };
    let inner_ctx = ctx;
    // A hook that itself expands a template (with its own hook).
    let outer = |q: &str| -> Result<Vec<QuerySample>, String> {
        let inner = |_: &str| -> Result<Vec<QuerySample>, String> { Ok(vec![sample(&[], 7.0)]) };
        let v = expand(
            "inner",
            "{{ query \"x\" | first | value }}",
            &inner_ctx,
            Some(&inner),
        )
        .map_err(|e| e.to_string())?;
        Ok(vec![sample(&[("inner", &v), ("q", q)], 1.0)])
    };
    assert_eq!(
        expand(
            "outer",
            r#"{{ query "up" | first | label "inner" }} {{ query "up" | first | label "q" }}"#,
            &ctx,
            Some(&outer)
        )
        .unwrap(),
        "7 up"
    );
    assert!(STATE.with(|s| s.borrow().is_none()));
    // Without a hook the next expansion cannot reach the old one.
    assert!(expand("t", r#"{{ query "up" }}"#, &ctx, None).is_err());
}

#[test]
fn printf_formats() {
    assert_eq!(ok(r#"{{ printf "%s-%d" "a" 5 }}"#), "a-5");
    assert_eq!(ok(r#"{{ printf "%.2f" $value }}"#), "1.50");
    assert_eq!(
        run_value(r#"{{ printf "%.2f" $value }}"#, 1e6).unwrap(),
        "1000000.00"
    );
    assert_eq!(
        run_value(r#"{{ printf "%.1f%%" $value }}"#, 99.95).unwrap(),
        "100.0%"
    );
    assert_eq!(ok(r#"{{ printf "%v|%v|%v" $value 3 "x" }}"#), "1.5|3|x");
    assert_eq!(ok(r#"{{ printf "%q" "a\"b" }}"#), r#""a\"b""#);
    assert_eq!(
        ok(r#"{{ printf "%5s|%-5s|%05d|%x|%X|%o|%b" "ab" "cd" 42 255 255 8 5 }}"#),
        "   ab|cd   |00042|ff|FF|10|101"
    );
    assert_eq!(
        ok(r#"{{ printf "%+d|% d|%+.1e|%g|%G" 5 5 1234.5 0.000012 1e20 }}"#),
        "+5| 5|+1.2e+03|1.2e-05|1E+20"
    );
    assert_eq!(
        ok(r#"{{ printf "%8.3f|%-8.2f|%08.3f" 3.14159 2.5 -3.14159 }}"#),
        "   3.142|2.50    |-003.142"
    );
    assert_eq!(ok(r#"{{ printf "%e" 1 }}"#), "1.000000e+00");
    assert_eq!(ok(r#"{{ printf "%t %v" true false }}"#), "true false");
    assert_eq!(ok(r#"{{ printf "%c%c" 72 105 }}"#), "Hi");
    assert_eq!(ok(r#"{{ printf "%[2]s %[1]s" "a" "b" }}"#), "b a");
    assert_eq!(ok(r#"{{ printf "%*d|%.*f" 4 7 1 2.25 }}"#), "   7|2.2");
    assert_eq!(ok(r#"{{ printf "%.3s" "abcdef" }}"#), "abc");
    assert_eq!(ok(r#"{{ printf "%s" $labels.job }}"#), "node");
    // Mistakes print like Go.
    assert_eq!(ok(r#"{{ printf "%d" "x" }}"#), "%!d(string=x)");
    assert_eq!(ok(r#"{{ printf "%d" $value }}"#), "%!d(float64=1.5)");
    assert_eq!(ok(r#"{{ printf "%s" 5 }}"#), "%!s(int=5)");
    assert_eq!(ok(r#"{{ printf "%s %s" "a" }}"#), "a %!s(MISSING)");
    assert_eq!(ok(r#"{{ printf "%s" "a" "b" }}"#), "a%!(EXTRA string=b)");
    assert_eq!(ok(r#"{{ printf "100%%" }}"#), "100%");
    assert_eq!(ok(r#"{{ printf "%" }}"#), "%!(NOVERB)");
    assert_eq!(ok(r#"{{ printf "%99999999d" 1 }}"#), "%!(BADWIDTH)1");
    assert_eq!(
        ok(r#"{{ printf "%.99999999f" 1.5 }}"#),
        "%!(BADPREC)1.500000"
    );
    // As a pipeline stage the piped value is the last argument.
    assert_eq!(ok(r#"{{ $value | printf "%.3f" }}"#), "1.500");
    assert_eq!(ok(r#"{{ "x" | printf "%s-%s" "a" }}"#), "a-x");
}

#[test]
fn go_float_formatting() {
    let f = |v: f64, verb: char, p: Option<usize>| go_format_float(v, verb, p);
    assert_eq!(f(12345.0, 'g', Some(4)), "1.234e+04"); // round half to even
    assert_eq!(f(100000.0, 'g', Some(4)), "1e+05");
    assert_eq!(f(1200.0, 'g', Some(4)), "1200");
    assert_eq!(f(0.0001234, 'g', Some(4)), "0.0001234");
    assert_eq!(f(0.12, 'g', Some(4)), "0.12");
    assert_eq!(f(0.0, 'e', Some(2)), "0.00e+00");
    assert_eq!(f(1e-7, 'e', None), "1e-07");
    assert_eq!(f(123.0, 'e', Some(0)), "1e+02");
    assert_eq!(f(2.5, 'f', Some(0)), "2");
    assert_eq!(f(1e100, 'g', None), "1e+100");
    assert_eq!(f(5e-324, 'g', None), "5e-324");
    assert_eq!(f(f64::MAX, 'g', None), "1.7976931348623157e+308");
}

#[test]
fn comparisons_and_logic() {
    assert_eq!(
        ok(r#"{{ if gt $value 1.0 }}high{{ else }}low{{ end }}"#),
        "high"
    );
    assert_eq!(ok(r#"{{ if lt $value 2 }}lt{{ end }}"#), "lt");
    assert_eq!(ok(r#"{{ if eq $value 1.5 }}eq{{ end }}"#), "eq");
    assert_eq!(
        run_value(r#"{{ if ge $value 100 }}big{{ end }}"#, 1e6).unwrap(),
        "big"
    );
    // Two floats compare numerically, not as text.
    let res = vec![sample(&[], 9.0)];
    let l = Labels::default();
    let ctx = TemplateContext {
        labels: &l,
        external_labels: &l,
        external_url: "",
        value: 10.0,
    };
    let hook = move |_: &str| -> Result<Vec<QuerySample>, String> { Ok(res.clone()) };
    assert_eq!(
        expand(
            "t",
            r#"{{ if gt $value (query "x" | first | value) }}more{{ end }}"#,
            &ctx,
            Some(&hook)
        )
        .unwrap(),
        "more"
    );
    assert_eq!(ok(r#"{{ if eq $labels.job "node" }}node{{ end }}"#), "node");
    assert_eq!(
        ok(r#"{{ if eq $labels.job "a" "b" "node" }}any{{ end }}"#),
        "any"
    );
    assert_eq!(ok(r#"{{ if ne $labels.job "x" }}ne{{ end }}"#), "ne");
    assert_eq!(ok(r#"{{ if lt "a" "b" }}lex{{ end }}"#), "lex");
    assert_eq!(
        ok(r#"{{ and 1 0 }} {{ or 0 "" "x" }} {{ not true }}"#),
        "0 x false"
    );
    assert_eq!(run_value(r#"{{ not $value }}"#, 0.0).unwrap(), "true");
    assert!(run(r#"{{ lt true false }}"#).is_err());
    assert!(run(r#"{{ eq "abc" 1 }}"#).is_err());
    assert_eq!(
        run_value(r#"{{ if gt $value 0.0 }}x{{ else }}nan{{ end }}"#, f64::NAN).unwrap(),
        "nan"
    );
}

#[test]
fn print_and_println() {
    assert_eq!(ok(r#"{{ print "a" 1 2 "b" }}"#), "a1 2b");
    assert_eq!(ok(r#"{{ print $value 2 }}"#), "1.5 2");
    assert_eq!(ok(r#"{{ println "a" 1 }}"#), "a 1\n");
}

#[test]
fn syntax_errors() {
    let e = run("{{").unwrap_err();
    assert!(matches!(e, TemplateError::Parse { .. }), "{e}");
    assert!(
        e.to_string().starts_with("error parsing template test: "),
        "{e}"
    );
    assert!(check_syntax("{{").is_err());
    assert!(check_syntax("{{ $labels.instance }} {{ $value | humanize }}").is_ok());
    assert!(check_syntax("{{ $externalLabels.x }}{{ $externalURL }}").is_ok());
    assert!(check_syntax(r#"{{ with query "up" }}{{ . | first | value }}{{ end }}"#).is_ok());
    let e = check_syntax("{{ nosuchfunc 1 }}").unwrap_err();
    assert!(
        e.to_string().contains("function nosuchfunc not defined"),
        "{e}"
    );
    let e = check_syntax("{{ $undefined }}").unwrap_err();
    assert!(
        e.to_string().contains("undefined variable $undefined"),
        "{e}"
    );
    assert!(check_syntax("{{ if true }}x").is_err());
    assert!(check_syntax("{{ end }}").is_err());
    assert!(check_syntax("{{ .Labels.x ").is_err());
    assert_eq!(check_syntax("{{ if true }}x{{ end }}"), Ok(()));
    assert!(check_syntax("{{ }}").is_err());
    assert!(check_syntax("{{-}}").is_err());
    assert!(check_syntax("{{ | toUpper }}").is_err());
    assert!(check_syntax("{{ 1abc }}").is_err());
}

#[test]
fn inputs_that_break_gtmpl_are_rejected() {
    let e = check_syntax("{{ é }}").unwrap_err();
    assert!(
        e.to_string()
            .contains("unrecognized character in action: U+00E9 'é'"),
        "{e}"
    );
    let e = check_syntax("{{ \u{a0}}}").unwrap_err();
    assert!(e.to_string().contains("U+00A0"), "{e}");
    assert!(check_syntax(r#"{{ "a\x4" }}"#).is_err());
    assert!(check_syntax(r#"{{ "\é" }}"#).is_err());
    assert!(check_syntax(r#"{{ "\q" }}"#).is_err());
    assert!(check_syntax(r#"{{ "\xff" }}"#).is_err()); // not UTF-8
    assert!(check_syntax("{{ .Labels.x ").is_err());
    assert!(check_syntax("{{ `unterminated }}").is_err());
    let e = check_syntax(r#"{{define "a"}}{{template "a"}}{{end}}{{template "a"}}"#).unwrap_err();
    assert!(
        e.to_string().contains("recursive template invocation"),
        "{e}"
    );
    let e = run(r#"{{define "a"}}{{template "b"}}{{end}}{{define "b"}}{{ if true }}{{template "a"}}{{end}}{{end}}{{template "a"}}"#).unwrap_err();
    assert!(e.to_string().contains("recursive"), "{e}");
    assert!(
        check_syntax(&format!(
            "{}x{}",
            "{{ if true }}".repeat(100),
            "{{ end }}".repeat(100)
        ))
        .is_err()
    );
    assert!(
        check_syntax(&format!(
            "{{{{ {}1{} }}}}",
            "(".repeat(100),
            ")".repeat(100)
        ))
        .is_err()
    );
    // Non-ASCII text, strings, raw strings, char constants and comments are fine.
    assert_eq!(
        ok(r#"é {{ "héllo" }} {{ `wörld` }} {{ 'é' }}{{/* ünïcode */}}!"#),
        "é héllo wörld 233!"
    );
    assert_eq!(
        ok(r#"{{ "tab\tquote\" backslash\\" }}"#),
        "tab\tquote\" backslash\\"
    );
}

#[test]
fn literals_are_decoded_like_go() {
    // Escapes gtmpl gets wrong: \x, \u, \U, octal, \a, \v, a final backslash.
    assert_eq!(
        ok(r#"{{ "\u0041 more \x41\x42 text \101 \U0001F600" }}"#),
        "A more AB text A \u{1F600}"
    );
    assert_eq!(
        ok(r#"{{ "a\\" }}|{{ "\\\\" }}|{{ "\a\v" }}"#),
        "a\\|\\\\|\x07\x0b"
    );
    assert_eq!(ok(r#"{{ printf "%s-%s" "x\\" "y" }}"#), "x\\-y");
    // Raw strings keep backslashes, as in Go.
    assert_eq!(ok(r#"{{ `a\d+\` }}"#), r"a\d+\");
    assert_eq!(
        ok(r#"{{ reReplaceAll `(\d+)\.(\d+)` "$1,$2" "3.14" }}"#),
        "3,14"
    );
    assert_eq!(ok("{{ `multi\nline` }}"), "multi\nline");
    // Character constants are their code point.
    assert_eq!(
        ok(r#"{{ 'a' }} {{ '\n' }} {{ '\'' }} {{ '\\' }} {{ '\x41' }} {{ '\u00e9' }}"#),
        "97 10 39 92 65 233"
    );
    // Float literals keep Go's float semantics.
    assert_eq!(
        ok("{{ -0.5 }} {{ 1e6 }} {{ 2.0 }} {{ 1e21 }} {{ .5 }} {{ +1.5 }}"),
        "-0.5 1e+06 2 1e+21 0.5 1.5"
    );
    assert_eq!(
        ok("{{ 12345678901234567890123 }}"),
        "1.2345678901234568e+22"
    );
    assert_eq!(ok(r#"{{ printf "%d %v" 2.0 3 }}"#), "%!d(float64=2) 3");
    assert_eq!(
        ok("{{ -1 }} {{ 010 }} {{ 0x1F }} {{ 0b101 }} {{ 1_000 }} {{ 18446744073709551615 }}"),
        "-1 8 31 5 1000 18446744073709551615"
    );
    // Trim markers still work next to numbers.
    assert_eq!(ok("a  {{- 1 -}}  b {{-2}}"), "a1b -2");
}

#[test]
fn trim_markers_and_comments() {
    assert_eq!(
        ok("été \n {{- $labels.job -}} \n\t élevée"),
        "éténodeélevée"
    );
    assert_eq!(ok("x {{- /* note */ -}} y"), "xy");
    assert_eq!(ok("x {{/* note */}} y"), "x  y");
    assert_eq!(ok("x\n{{- if true }}\n  a\n{{- end }}\n"), "x\n  a\n");
    // Only Go's white space is trimmed (not U+00A0).
    assert_eq!(ok("x\u{a0} {{- 1 }}"), "x\u{a0}1");
    assert!(check_syntax("{{/* unclosed }}").is_err());
    assert_eq!(ok("{{- \" trim \" -}}  x"), " trim x");
    assert_eq!(ok("{{ \"}}\" }}"), "}}");
}

#[test]
fn expand_or_error_text_formats_like_prometheus() {
    let l = Labels::default();
    let ctx = TemplateContext {
        labels: &l,
        external_labels: &l,
        external_url: "",
        value: 0.0,
    };
    assert_eq!(
        expand_or_error_text("__alert_X", r#"{{ humanize "one" }}"#, &ctx, None),
        r#"<error expanding template: error executing template __alert_X: error calling humanize: strconv.ParseFloat: parsing "one": invalid syntax>"#
    );
    assert!(
        expand_or_error_text("__alert_X", "{{", &ctx, None)
            .starts_with("<error expanding template: error parsing template __alert_X: ")
    );
    assert_eq!(
        expand_or_error_text("__alert_X", "ok {{ 1 }}", &ctx, None),
        "ok 1"
    );
}

#[test]
fn error_type_is_std_error() {
    fn takes(_: &dyn std::error::Error) {}
    let e = check_syntax("{{").unwrap_err();
    takes(&e);
    assert!(e.to_string().starts_with("error parsing template: "), "{e}");
    assert!(!e.message().is_empty());
}

#[test]
fn realistic_alerting_templates() {
    let l = labels(&[
        ("instance", "node1:9100"),
        ("job", "node"),
        ("namespace", "prod"),
        ("pod", "api-0"),
        ("container", "api"),
    ]);
    let e = labels(&[("cluster", "eu1")]);
    let ctx = TemplateContext {
        labels: &l,
        external_labels: &e,
        external_url: "https://prom.example.com",
        value: 4.0 / 3.0,
    };
    let hook = |q: &str| -> Result<Vec<QuerySample>, String> {
        match q {
            "node_uname_info{instance='node1:9100'}" => {
                Ok(vec![sample(&[("nodename", "node1.example.com")], 1.0)])
            }
            "up" => Ok(vec![
                sample(&[("instance", "a:1")], 1.0),
                sample(&[("instance", "b:1")], 0.0),
            ]),
            _ => Ok(vec![]),
        }
    };
    let x = |t: &str| expand("__alert_Test", t, &ctx, Some(&hook)).unwrap();
    assert_eq!(
        x("Disk almost full\n  VALUE = {{ $value }}\n  LABELS = {{ $labels }}"),
        "Disk almost full\n  VALUE = 1.3333333333333333\n  LABELS = map[container:api instance:node1:9100 job:node namespace:prod pod:api-0]"
    );
    assert_eq!(
        x(
            "Pod {{ $labels.namespace }}/{{ $labels.pod }} ({{ $labels.container }}) is restarting {{ printf \"%.2f\" $value }} times / 10 minutes."
        ),
        "Pod prod/api-0 (api) is restarting 1.33 times / 10 minutes."
    );
    assert_eq!(x("{{ $value | humanizePercentage }} used"), "133.3% used");
    assert_eq!(x("{{ $value | humanize1024 }}B"), "1.333B");
    assert_eq!(
        x(
            "{{ with printf \"node_uname_info{instance='%s'}\" $labels.instance | query }}{{ . | first | label \"nodename\" }}{{ end }}"
        ),
        "node1.example.com"
    );
    assert_eq!(
        x("{{ if gt $value 1.0 }}critical{{ else }}warning{{ end }}"),
        "critical"
    );
    assert_eq!(
        x(
            "{{- range $i, $s := query \"up\" }}{{ if $i }}, {{ end }}{{ $s.Labels.instance | stripPort }}={{ $s.Value }}{{ end -}}"
        ),
        "a=1, b=0"
    );
    assert_eq!(
        x(
            "[{{ $externalLabels.cluster }}] {{ $labels.instance }} down, see {{ $externalURL }}{{ graphLink \"up == 0\" }}"
        ),
        "[eu1] node1:9100 down, see https://prom.example.com/graph?g0.expr=up+%3D%3D+0&g0.tab=0"
    );
    assert_eq!(
        x("{{ $labels.instance | reReplaceAll \":[0-9]+$\" \"\" | toUpper }}"),
        "NODE1"
    );
}

#[test]
fn cached_templates_are_reused_correctly() {
    let t = r#"{{ $value }} {{ printf "%d" 2.0 }} {{ if gt $value 1.0 }}big{{ end }}"#;
    assert_eq!(run_value(t, 0.5).unwrap(), "0.5 %!d(float64=2) ");
    assert_eq!(run_value(t, 5.0).unwrap(), "5 %!d(float64=2) big");
    for _ in 0..2 {
        assert!(run("{{ humanize }}").is_err());
        assert!(run("{{").is_err());
    }
    // The same text under another name is parsed for that name.
    let l = Labels::default();
    let ctx = TemplateContext {
        labels: &l,
        external_labels: &l,
        external_url: "",
        value: 0.0,
    };
    let e = expand("other", "{{", &ctx, None).unwrap_err();
    assert!(
        e.to_string().starts_with("error parsing template other:"),
        "{e}"
    );
}

#[test]
fn values_print_like_go() {
    assert_eq!(ok("{{ $labels }}"), "map[instance:host1:9100 job:node]");
    assert_eq!(
        ok("LABELS = {{ $labels }}"),
        "LABELS = map[instance:host1:9100 job:node]"
    );
    assert_eq!(
        ok("{{ . }}"),
        "{map[instance:host1:9100 job:node] map[cluster:eu1] http://testhost:9090/path/prefix 1.5}"
    );
    assert_eq!(
        with_query(
            r#"{{ query "up" | first }}"#,
            vec![sample(&[("a", "b")], 2.0)]
        )
        .unwrap(),
        "&{map[a:b] 2}"
    );
    assert_eq!(ok(r#"{{ args 1 "x" }}"#), "map[arg0:1 arg1:x]");
    // Literal text is never altered.
    assert_eq!(ok("<no value>{{ 1 }}"), "<no value>1");
    assert_eq!(ok("{{ $x := 5 }}[{{ $x }}]"), "[5]");
    assert_eq!(ok("{{ $.Labels.job }}"), "node");
}
