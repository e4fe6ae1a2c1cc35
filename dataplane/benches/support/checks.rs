//! Unit checks of the benchmarks' own helpers (section replacement, number
//! formatting, reading `wrk`'s and the reader's output, the open-loop
//! generator's plan and result line), run with the ordinary tests. They
//! live here, not in `#[cfg(test)]` modules of the benches, because a bench
//! with `harness = false` is compiled with `cfg(test)` but never runs its
//! tests. Nothing here starts a server or measures anything.

#![allow(dead_code)]

#[path = "../throughput/open_loop.rs"]
mod open_loop;
#[path = "report.rs"]
mod report;
#[path = "../throughput/scrape.rs"]
mod scrape;
#[path = "../throughput/wrk.rs"]
mod wrk;

mod sections {
    use crate::report::replace_section;

    #[test]
    fn replaces_only_its_own_section() {
        let doc = "# T\n\n<!-- a:begin -->\nold a\n<!-- a:end -->\n\n<!-- b:begin -->\nb\n<!-- b:end -->\n";
        assert_eq!(
            replace_section(doc, "a", "new a\n"),
            "# T\n\n<!-- a:begin -->\nnew a\n<!-- a:end -->\n\n<!-- b:begin -->\nb\n<!-- b:end -->\n"
        );
        assert_eq!(
            replace_section(doc, "b", "new b"),
            "# T\n\n<!-- a:begin -->\nold a\n<!-- a:end -->\n\n<!-- b:begin -->\nnew b\n<!-- b:end -->\n"
        );
    }

    #[test]
    fn appends_a_missing_section() {
        assert_eq!(
            replace_section("# T\n", "c", "c text"),
            "# T\n\n<!-- c:begin -->\nc text\n<!-- c:end -->\n"
        );
        assert_eq!(
            replace_section("", "c", "x"),
            "<!-- c:begin -->\nx\n<!-- c:end -->\n"
        );
    }

    #[test]
    fn an_unterminated_section_is_not_cut_off() {
        // A begin marker without its end: append, never drop the text after it.
        let doc = "<!-- a:begin -->\nkeep me\n";
        let out = replace_section(doc, "a", "new");
        assert!(out.starts_with(doc.trim_end()), "{out}");
        assert!(
            out.ends_with("<!-- a:begin -->\nnew\n<!-- a:end -->\n"),
            "{out}"
        );
    }
}

mod numbers {
    use crate::report::{median, micros, size, thousands};

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN, 1.0]), Some(1.0));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn for_people() {
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(-1_234.0), "-1,234");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(micros(1_500), "1.50");
        assert_eq!(micros(1_234_000), "1,234");
        assert_eq!(size(333), "333 B");
        assert_eq!(size(11_500), "11.2 KiB");
    }
}

mod wrk_output {
    use crate::wrk::{WrkError, parse};

    const REPORT: &str = "Running 3s test @ http://127.0.0.1:8080/x
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.45ms  217.53us   5.32ms   90.23%
    Req/Sec    22.16k     1.04k   23.42k    80.00%
  Latency Distribution
     50%  812.00us
     75%    1.50ms
     90%    1.63ms
     99%    2.19ms
  66154 requests in 3.00s, 30.78MB read
Requests/sec:  22050.12
Transfer/sec:     10.26MB
";

    #[test]
    fn reads_rate_and_percentiles() {
        let s = parse(REPORT).unwrap();
        assert_eq!(s.requests_per_sec, 22050.12);
        assert_eq!(s.p50_ns, 812_000);
        assert_eq!(s.p99_ns, 2_190_000);
    }

    #[test]
    fn reads_the_request_count() {
        assert_eq!(parse(REPORT).unwrap().requests, 66_154);
    }

    #[test]
    fn reads_seconds() {
        let s = parse(&REPORT.replace("2.19ms", "1.20s")).unwrap();
        assert_eq!(s.p99_ns, 1_200_000_000);
    }

    #[test]
    fn a_cycle_script_names_every_path_once_in_order() {
        let paths = ["/t/A".to_owned(), "/t/B".to_owned()];
        let script = crate::wrk::cycle_script(&paths);
        assert!(
            script.starts_with("local paths = {\"/t/A\", \"/t/B\"}\n"),
            "{script}"
        );
        assert!(script.contains("i = i % #paths + 1"));
        assert!(script.contains("wrk.format(nil, paths[i])"));
    }

    #[test]
    fn refuses_error_responses() {
        let text = REPORT.replace(
            "Requests/sec:",
            "  Non-2xx or 3xx responses: 12\nRequests/sec:",
        );
        assert!(matches!(parse(&text), Err(WrkError::Errors(12))));
    }

    #[test]
    fn refuses_output_without_figures() {
        assert!(matches!(parse("nonsense"), Err(WrkError::Unparsed(..))));
        let unknown_unit = REPORT.replace("2.19ms", "2.19m");
        assert!(matches!(parse(&unknown_unit), Err(WrkError::Unparsed(..))));
    }
}

mod metrics {
    use crate::scrape::{L1Lookups, redis_get_calls};

    #[test]
    fn counts_redis_gets() {
        let info = "# Commandstats\r\ncmdstat_set:calls=3,usec=9\r\ncmdstat_get:calls=1234,usec=5678,usec_per_call=4.60\r\n";
        assert_eq!(redis_get_calls(info), Some(1234));
        assert_eq!(redis_get_calls("# Commandstats\r\n"), Some(0));
        assert_eq!(redis_get_calls("-ERR unknown"), None);
    }

    const TEXT: &str = r#"# HELP cachebridge_cache_lookups Look-ups per cache tier by outcome.
# TYPE cachebridge_cache_lookups counter
cachebridge_cache_lookups_total{tier="L1",outcome="hit"} 9990
cachebridge_cache_lookups_total{outcome="miss",tier="L1"} 10
cachebridge_cache_lookups_total{tier="L1",outcome="skipped"} 5
cachebridge_cache_lookups_total{tier="L2",outcome="hit"} 10
# EOF
"#;

    #[test]
    fn counts_l1_lookups() {
        let counts = L1Lookups::parse(TEXT).unwrap();
        assert_eq!(
            counts,
            L1Lookups {
                hits: 9990,
                total: 10_000
            }
        );
        assert_eq!(counts.ratio(), Some(0.999));
        let earlier = L1Lookups {
            hits: 990,
            total: 1_000,
        };
        assert_eq!(
            counts.since(earlier),
            L1Lookups {
                hits: 9000,
                total: 9000
            }
        );
        assert_eq!(counts.since(earlier).add(earlier), counts);
    }

    #[test]
    fn a_missing_metric_is_none() {
        assert_eq!(L1Lookups::parse("# EOF\n"), None);
        assert_eq!(L1Lookups::default().ratio(), None);
    }
}

mod open_loop_lines {
    use crate::open_loop::{FixedRate, Plan, Target};
    use std::time::Duration;

    #[test]
    fn result_line_round_trips() {
        let r = FixedRate {
            due: 30_000,
            answered: 29_990,
            errors: 0,
            p50_ns: 120_000,
            p99_ns: 480_000,
            max_ns: 2_000_000,
        };
        assert_eq!(FixedRate::parse(&format!("noise\n{}\n", r.line())), Some(r));
        assert_eq!(FixedRate::parse("nothing"), None);
        assert!(r.kept_rate());
        let short = FixedRate {
            answered: 20_000,
            ..r
        };
        assert!(!short.kept_rate());
        assert!(!FixedRate { errors: 1, ..r }.kept_rate());
    }

    #[test]
    fn plan_round_trips() {
        let plan = Plan {
            url: "http://127.0.0.1:9/a?b=c".into(),
            paths: vec!["/t?s=A,B".into(), "/t/C".into()],
            rate: 12_345.5,
            connections: 32,
            warmup: Duration::from_millis(500),
            measure: Duration::from_secs(3),
            accept_encoding: "gzip, br".into(),
        };
        let parsed = Plan::parse(&plan.args()[1..]).unwrap();
        assert_eq!(parsed.url, plan.url);
        assert_eq!(parsed.rate, plan.rate);
        assert_eq!(parsed.connections, 32);
        assert_eq!(parsed.warmup, plan.warmup);
        assert_eq!(parsed.measure, plan.measure);
        assert_eq!(parsed.paths, plan.paths, "paths may hold commas");
        assert_eq!(parsed.accept_encoding, plan.accept_encoding);
        assert!(Plan::parse(&["x".to_owned()]).is_err());
    }

    #[test]
    fn targets() {
        let t = Target::parse("http://127.0.0.1:9/a?b=c").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.path.as_str()),
            ("127.0.0.1:9", "/a?b=c")
        );
        let t = Target::parse("http://127.0.0.1:9").unwrap();
        assert_eq!(t.path, "/");
        assert!(Target::parse("https://x/").is_err());
    }
}
