//! The seed inputs of every target: genuine tokens, near misses, and the malformed shapes each parser must
//! refuse with a clear answer.

use crate::fixtures;

/// Every target's seeds, by target name.
pub fn seeds() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let genuine = fixtures::genuine();
    let tokens: Vec<&str> = genuine
        .valid
        .iter()
        .chain(&genuine.expired)
        .map(String::as_str)
        .collect();
    let malformed = [
        "",
        "a.b.c",
        "a.b",
        "a.b.c.d",
        "eyJhbGciOiJub25lIn0.e30.",
        "eyJhbGciOiJIUzI1NiJ9.e30.AAAA",
        "eyJhbGciOiJIUzI1NiIsImNyaXQiOlsieCJdfQ.e30.AAAA",
        "....",
        "é.é.é",
    ];

    let mut bearer = Vec::new();
    for token in &tokens {
        bearer.push(request(1, &format!("Bearer {token}"), "", ""));
        bearer.push(request(1, &format!("bearer  {token}"), "", ""));
        bearer.push(request(9, &format!("Bearer {token}"), "", ""));
        bearer.push(request(2, "", &format!("at={token}; other=1"), ""));
        bearer.push(request(4, "", "", &format!("access_token={token}&x=1")));
        bearer.push(request(
            7,
            &format!("Bearer {token}"),
            &format!("at={token}"),
            "",
        ));
    }
    for shape in malformed {
        bearer.push(request(1, &format!("Bearer {shape}"), "", ""));
    }
    for header in [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer ",
        "Bearer a b",
        "DPoP x.y.z",
        "Bearer \t x",
    ] {
        bearer.push(request(1, header, "", ""));
    }
    bearer.push(request(0, "", "", ""));
    bearer.push(request(1, &format!("Bearer {}", "A".repeat(9000)), "", ""));

    let mut jwt: Vec<Vec<u8>> = tokens
        .iter()
        .map(|token| token.as_bytes().to_vec())
        .collect();
    jwt.extend(malformed.iter().map(|shape| shape.as_bytes().to_vec()));
    let jws = jwt.clone();

    let keys = fixtures::keys();
    let public: Vec<String> = [&keys.ed25519]
        .iter()
        .filter_map(|key| key.public_jwk())
        .map(|jwk| serde_json::to_string(jwk).unwrap_or_default())
        .collect();
    let jwks = [
        format!(r#"{{"keys":[{}]}}"#, public.join(",")),
        r#"{"keys":[{"kty":"RSA","e":"AQAB","kid":"2011-04-29","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}]}"#.to_owned(),
        r#"{"kty":"EC","crv":"P-256","kid":"ec","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","d":"870MB6gfuTJ4HtUnUvYMyJpr5eUZNP4Bk43bVdj3eAE"}"#.to_owned(),
        r#"{"kty":"OKP","crv":"Ed25519","kid":"ed","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#.to_owned(),
        r#"{"keys":[{"kty":"oct","kid":"h","k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},{"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB"}]}"#.to_owned(),
        r#"{"keys":[{"kty":"EC","crv":"P-384","x":"","y":""},{"kty":"OKP","crv":"X25519","x":"AA"}]}"#.to_owned(),
        r#"{"keys":{}}"#.to_owned(),
        "[]".to_owned(),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect();

    let form = |selector: u8, body: &str| [&[selector][..], body.as_bytes()].concat();
    let token_endpoint = vec![
        form(
            0,
            "grant_type=password&username=alice&password=wonderland&client_id=demo",
        ),
        form(
            0,
            "grant_type=password&username=alice&password=wrong&client_id=demo",
        ),
        form(
            0,
            "grant_type=refresh_token&refresh_token=AAAA&client_id=demo",
        ),
        form(32, "c3ZjOnMzY3JldA==\ngrant_type=client_credentials"),
        form(
            0,
            "grant_type=client_credentials&client_id=svc&client_secret=s3cret&scope=a%20b",
        ),
        form(
            0,
            "grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=a.b.c",
        ),
        form(0, "grant_type=password&grant_type=password"),
        form(0, "%zz=%"),
        form(
            4,
            r#"{"grant_type":"password","username":"alice","password":"wonderland","client_id":"demo"}"#,
        ),
        form(4, r#"{"grant_type":["x"],"username":1}"#),
        form(8, "grant_type=password"),
        form(20, "x"),
        form(1, "token=AAAA&token_type_hint=refresh_token&client_id=demo"),
        form(2, "refresh_token=AAAA&client_id=demo"),
        form(1, ""),
    ];

    let challenge = [
        r#"Bearer realm="api""#,
        r#"Bearer error="invalid_token", error_description="The access token expired""#,
        r#"Basic realm="x", Bearer error="invalid_token", scope="a b""#,
        r#"DPoP error="use_dpop_nonce", algs="ES256 EdDSA""#,
        "Negotiate abc+/==, NTLM",
        r#"Bearer realm="a\"b\\c""#,
        "Bearer error = \"spaced\" ,, ,",
        "Bearer error=\"unterminated",
    ]
    .into_iter()
    .map(|value| value.as_bytes().to_vec())
    .collect();

    let mut dpop_proof: Vec<Vec<u8>> = fixtures::genuine_proofs()
        .iter()
        .map(|proof| proof.as_bytes().to_vec())
        .collect();
    dpop_proof.extend(jwt.iter().cloned());

    vec![
        ("bearer", bearer),
        ("jwt", jwt),
        ("jwks", jwks),
        ("jws", jws),
        ("token_endpoint", token_endpoint),
        ("challenge", challenge),
        ("dpop_proof", dpop_proof),
    ]
}

fn request(selector: u8, authorization: &str, cookie: &str, query: &str) -> Vec<u8> {
    let mut out = vec![selector];
    out.extend_from_slice(authorization.as_bytes());
    out.push(0xFF);
    out.extend_from_slice(cookie.as_bytes());
    out.push(0xFF);
    out.extend_from_slice(query.as_bytes());
    out
}
