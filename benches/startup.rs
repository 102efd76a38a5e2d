//! Start-up and schema benchmark: process start to handshake line, and GetProviderSchema
//! round trips over the real mTLS connection. Prints medians over repeated runs.
//!
//!     cargo bench --bench startup [-- RUNS]

use std::path::Path;
use std::time::{Duration, Instant};

use terraform_provider_gitlabflux::tfplug::client::{ClientIdentity, PluginProcess};
use terraform_provider_gitlabflux::tfplug::proto::plugin::Empty;
use terraform_provider_gitlabflux::tfplug::proto::plugin::grpc_controller_client::GrpcControllerClient;
use terraform_provider_gitlabflux::tfplug::proto::tfplugin6::get_provider_schema;
use terraform_provider_gitlabflux::tfplug::proto::tfplugin6::provider_client::ProviderClient;

struct Samples(Vec<Duration>);

impl Samples {
    fn percentile(&self, p: f64) -> Duration {
        let mut v = self.0.clone();
        v.sort();
        let idx = ((v.len() - 1) as f64 * p).round() as usize;
        v[idx]
    }
    fn row(&self, name: &str) {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{name:<34} {:>5} {:>10.3} {:>10.3} {:>10.3} {:>10.3}",
            self.0.len(),
            ms(self.percentile(0.5)),
            ms(self.percentile(0.1)),
            ms(self.percentile(0.9)),
            ms(self.percentile(0.0)),
        );
    }
}

#[tokio::main]
async fn main() {
    let runs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(30);
    let binary = Path::new(env!("CARGO_BIN_EXE_terraform-provider-gitlabflux"));
    let identity = ClientIdentity::generate().expect("client identity");

    let mut startup = Samples(Vec::new());
    let mut first_schema = Samples(Vec::new());
    let mut warm_schema = Samples(Vec::new());
    for _ in 0..runs {
        let mut plugin = PluginProcess::spawn(binary, &identity, &[])
            .await
            .expect("plugin starts");
        startup.0.push(plugin.startup);
        let channel = plugin.connect(Some(&identity)).await.expect("connect");
        let mut client = ProviderClient::new(channel.clone());
        for i in 0..20 {
            let t = Instant::now();
            client
                .get_provider_schema(get_provider_schema::Request {})
                .await
                .expect("schema");
            let elapsed = t.elapsed();
            if i == 0 {
                first_schema.0.push(elapsed);
            } else {
                warm_schema.0.push(elapsed);
            }
        }
        let _ = GrpcControllerClient::new(channel).shutdown(Empty {}).await;
        let _ = plugin.child.wait().await;
    }

    println!("binary: {}", binary.display());
    println!(
        "{:<34} {:>5} {:>10} {:>10} {:>10} {:>10}",
        "measurement", "n", "median ms", "p10 ms", "p90 ms", "min ms"
    );
    startup.row("process start -> handshake line");
    first_schema.row("GetProviderSchema (first call)");
    warm_schema.row("GetProviderSchema (warm)");
}
