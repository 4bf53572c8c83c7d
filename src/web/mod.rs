//! The browser pages, embedded in the binary: the dev phone and the demo site (simulator mode), and the console (every mode).

pub mod console;
pub mod demo;

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{HttpResponse, web};

use crate::error::AppError;

/// (name, content type, content) of every embedded file.
const ASSETS: [(&str, &str, &str); 9] = [
    ("index.html", "text/html; charset=utf-8", include_str!("assets/index.html")),
    ("phone.html", "text/html; charset=utf-8", include_str!("assets/phone.html")),
    ("demo.html", "text/html; charset=utf-8", include_str!("assets/demo.html")),
    ("app.css", "text/css; charset=utf-8", include_str!("assets/app.css")),
    ("phone.js", "text/javascript; charset=utf-8", include_str!("assets/phone.js")),
    ("demo.js", "text/javascript; charset=utf-8", include_str!("assets/demo.js")),
    ("i18n.js", "text/javascript; charset=utf-8", include_str!("assets/i18n.js")),
    ("favicon.svg", "image/svg+xml", include_str!("assets/favicon.svg")),
    ("messages.js", "text/javascript; charset=utf-8", include_str!("assets/messages.js")),
];

/// The icon browsers ask for at `/favicon.ico` whatever the page says (the
/// pages link `favicon.svg`): the same picture, 16, 32 and 48 pixels.
const FAVICON_ICO: &[u8] = include_bytes!("assets/favicon.ico");

/// Same-origin everything; prompt audio may come from the public URL.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   media-src 'self' http: https: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'";

fn serve(name: &str) -> Result<HttpResponse, AppError> {
    serve_from(&ASSETS, name)
}

/// The embedded file `name` of `assets`, with the pages' security headers.
fn serve_from(assets: &[(&str, &str, &'static str)], name: &str) -> Result<HttpResponse, AppError> {
    let (_, content_type, body) =
        assets.iter().find(|(n, _, _)| *n == name).ok_or(AppError::NotFound("no such asset"))?;
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, *content_type))
        .insert_header((CACHE_CONTROL, "no-cache"))
        .insert_header(("Content-Security-Policy", CSP))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .body(*body))
}

async fn phone() -> Result<HttpResponse, AppError> {
    serve("phone.html")
}

/// `GET /`: a page linking the two others (a first visitor tries the root).
async fn index() -> Result<HttpResponse, AppError> {
    serve("index.html")
}

async fn demo_page() -> Result<HttpResponse, AppError> {
    serve("demo.html")
}

async fn asset(name: web::Path<String>) -> Result<HttpResponse, AppError> {
    if name.ends_with(".html") {
        return Err(AppError::NotFound("no such asset"));
    }
    serve(&name)
}

/// `GET /favicon.ico`, in every provider mode: a browser that opens any
/// page of the server asks for it, and a 404 there is noise in its console.
pub async fn favicon() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "image/x-icon"))
        .insert_header((CACHE_CONTROL, "public, max-age=86400"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(FAVICON_ICO)
}

/// Routes of the pages; mounted only with the simulator provider.
pub fn routes(cfg: &mut web::ServiceConfig) {
    // HEAD as well as GET, for link checkers and monitoring.
    cfg.service(web::resource("/").route(web::get().to(index)).route(web::head().to(index)))
        .service(web::resource("/dev/phone").route(web::get().to(phone)).route(web::head().to(phone)))
        .service(web::resource("/demo").route(web::get().to(demo_page)).route(web::head().to(demo_page)))
        .route("/assets/{name}", web::get().to(asset))
        .configure(demo::routes);
}
