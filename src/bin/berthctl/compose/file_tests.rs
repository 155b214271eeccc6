#![allow(clippy::unwrap_used)]

use super::*;

fn parse_str(yaml: &str) -> anyhow::Result<Project> {
    let doc: Value = serde_yaml_ng::from_str(yaml).unwrap();
    parse(&doc, Path::new("/srv/app"), None)
}

const WORDPRESS: &str = r#"
services:
  db:
    image: mysql:8
    restart: always
    environment:
      MYSQL_DATABASE: wordpress
      MYSQL_PASSWORD:
    volumes:
      - db_data:/var/lib/mysql
    healthcheck:
      test: ["CMD-SHELL", "mysqladmin ping"]
      interval: 1s
      retries: 5
  wordpress:
    image: wordpress:latest
    depends_on:
      db:
        condition: service_healthy
    ports:
      - "8000:80"
      - target: 443
        host_ip: 127.0.0.1
    command: sh -c 'echo "hi there"; exec apache2'
    volumes:
      - ./html:/var/www/html:ro
      - type: tmpfs
        target: /tmp
volumes:
  db_data: {}
"#;

#[test]
fn a_two_service_file_reads_as_docker_compose_reads_it() {
    let p = parse_str(WORDPRESS).unwrap();
    assert_eq!(p.name, "app", "the directory's name");
    assert_eq!(
        p.services.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["db", "wordpress"]
    );
    let db = &p.services[0];
    assert_eq!(db.environment, ["MYSQL_DATABASE=wordpress", "MYSQL_PASSWORD"]);
    assert_eq!(db.volumes, ["app_db_data:/var/lib/mysql"]);
    assert_eq!(db.restart.as_deref(), Some("always"));
    let h = db.healthcheck.clone().unwrap();
    assert_eq!(h.test, ["sh", "-c", "mysqladmin ping"]);
    assert_eq!((h.interval, h.retries), (Duration::from_secs(1), 5));
    let wp = &p.services[1];
    assert_eq!(wp.depends_on, [("db".to_string(), Condition::Healthy)]);
    assert_eq!(wp.ports, ["8000:80", "127.0.0.1::443"]);
    assert_eq!(
        wp.command.clone().unwrap(),
        ["sh", "-c", "echo \"hi there\"; exec apache2"]
    );
    assert_eq!(
        wp.volumes,
        ["/srv/app/./html:/var/www/html:ro", "m:type=tmpfs,target=/tmp"]
    );
    assert_eq!(p.volumes["db_data"].name, "app_db_data");
}

#[test]
fn mistakes_are_named() {
    for (yaml, says) in [
        ("services:\n  a:\n    image: x\n    privileged: true\n", "privileged"),
        ("services:\n  a:\n    build:\n      cache_from: [x]\n", "cache_from"),
        ("services:\n  a:\n    command: x\n", "image: or build:"),
        (
            "services:\n  a:\n    image: x\n    volumes: [data:/d]\n",
            "not declared",
        ),
        ("services:\n  a:\n    image: x\n    depends_on: [b]\n", "not defined"),
        (
            "services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [a]\n",
            "circle",
        ),
        ("services:\n  a:\n    image: x\n    networks: [front]\n", "front"),
        ("services:\n  a:\n    image: x\nsecrets: {}\n", "secrets"),
    ] {
        let err = format!("{:#}", parse_str(yaml).unwrap_err());
        assert!(err.contains(says), "{yaml}: {err}");
    }
}

#[test]
fn variables_and_durations() {
    let vars: HashMap<String, String> = [
        ("TAG".to_string(), "8".to_string()),
        ("EMPTY".to_string(), String::new()),
    ]
    .into();
    assert_eq!(interpolate("mysql:${TAG}", &vars).unwrap(), "mysql:8");
    assert_eq!(
        interpolate("${NOPE:-5.7} ${EMPTY:-d} ${EMPTY-d} $TAG $$HOME $", &vars).unwrap(),
        "5.7 d  8 $HOME $"
    );
    assert!(interpolate("${NOPE:?set it}", &vars)
        .unwrap_err()
        .to_string()
        .contains("set it"));
    assert_eq!(duration("1m30s").unwrap(), Duration::from_secs(90));
    assert_eq!(duration("500ms").unwrap(), Duration::from_millis(500));
    assert!(duration("5 parsecs").is_err());
    assert_eq!(dotenv("# c\nA=1\nB=\"two\"\n")["B"], "two");
}

#[test]
fn build_sections() {
    let p = parse_str(
        "services:\n  web:\n    build:\n      context: app\n      dockerfile: Dockerfile.dev\n      args: {A: 1, B: null}\n      target: dev\n  tagged:\n    build: ./other\n    image: reg.test/t:1\n",
    )
    .expect("parse");
    let web = p.services.iter().find(|s| s.name == "web").expect("web");
    assert_eq!(web.image, format!("{}-web", p.name));
    let b = web.build.clone().expect("build");
    assert!(b.context.ends_with("app"), "{:?}", b.context);
    assert_eq!(b.dockerfile.as_deref(), Some(std::path::Path::new("Dockerfile.dev")));
    assert_eq!(b.args, ["A=1", "B"]);
    assert_eq!(b.target.as_deref(), Some("dev"));
    let tagged = p.services.iter().find(|s| s.name == "tagged").expect("tagged");
    assert_eq!(tagged.image, "reg.test/t:1");
    assert!(tagged.build.as_ref().expect("build").context.ends_with("other"));
}
