//! Known-answer vectors from the RFCs and NIST, through the crate's API
//! (import, operate, export), and the spec's rejection cases with their
//! error names. The sandbox's conformance test compares the same against
//! Node; this one pins the primitives without JavaScript.

use phalanx_webcrypto::{
    ErrorName, Format, Generated, KeyData, Params, UsageList, Usages, decrypt, derive_bits, encrypt, export_key,
    generate_key, import_key, sign, unwrap_key, verify, wrap_key,
};
use zeroize::Zeroizing;

fn h(hex: &str) -> Vec<u8> {
    hex::decode(hex.replace(' ', "")).unwrap()
}

fn raw(bytes: &[u8]) -> KeyData {
    KeyData::Bytes(Zeroizing::new(bytes.to_vec()))
}

fn usages(names: &[&str]) -> UsageList {
    UsageList::parse(names).unwrap()
}

fn hmac(hash: &str) -> Params {
    Params { hash: Some(hash.into()), ..Params::named("HMAC") }
}

#[test]
fn hmac_rfc4231_case_2() {
    let key = import_key(Format::Raw, &raw(b"Jefe"), &hmac("SHA-256"), false, &usages(&["sign", "verify"])).unwrap();
    let data = b"what do ya want for nothing?";
    let mac = sign(&Params::named("HMAC"), &key, data).unwrap();
    assert_eq!(hex::encode(&mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    assert!(verify(&Params::named("HMAC"), &key, &mac, data).unwrap());
    let mut tampered = mac.clone();
    tampered[0] ^= 1;
    assert!(!verify(&Params::named("HMAC"), &key, &tampered, data).unwrap());

    let key = import_key(Format::Raw, &raw(b"Jefe"), &hmac("SHA-512"), false, &usages(&["sign"])).unwrap();
    assert_eq!(
        hex::encode(sign(&Params::named("HMAC"), &key, data).unwrap()),
        "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
    );
}

#[test]
fn hkdf_rfc5869_case_1() {
    let key =
        import_key(Format::Raw, &raw(&[0x0b; 22]), &Params::named("HKDF"), false, &usages(&["deriveBits"])).unwrap();
    let params = Params {
        hash: Some("SHA-256".into()),
        salt: Some(h("000102030405060708090a0b0c")),
        info: Some(h("f0f1f2f3f4f5f6f7f8f9")),
        ..Params::named("HKDF")
    };
    let okm = derive_bits(&params, &key, Some(42 * 8)).unwrap();
    assert_eq!(
        hex::encode(okm),
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    );
    // Lengths must be whole bytes, and present.
    assert_eq!(derive_bits(&params, &key, Some(7)).unwrap_err().name, ErrorName::Operation);
    assert_eq!(derive_bits(&params, &key, None).unwrap_err().name, ErrorName::Operation);
}

#[test]
fn pbkdf2_rfc6070() {
    let key =
        import_key(Format::Raw, &raw(b"password"), &Params::named("PBKDF2"), false, &usages(&["deriveBits"])).unwrap();
    for (iterations, expected) in [
        (1, "0c60c80f961f0e71f3a9b524af6012062fe037a6"),
        (2, "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957"),
        (4096, "4b007901b765489abead49d926f721d065a429c1"),
    ] {
        let params = Params {
            hash: Some("SHA-1".into()),
            salt: Some(b"salt".to_vec()),
            iterations: Some(iterations),
            ..Params::named("PBKDF2")
        };
        assert_eq!(hex::encode(derive_bits(&params, &key, Some(160)).unwrap()), expected);
    }
    // Bounded: 10^9 iterations are refused before any work.
    let params = Params {
        hash: Some("SHA-256".into()),
        salt: Some(b"salt".to_vec()),
        iterations: Some(1_000_000_000),
        ..Params::named("PBKDF2")
    };
    assert_eq!(derive_bits(&params, &key, Some(256)).unwrap_err().name, ErrorName::NotSupported);
    // PBKDF2 keys cannot be extractable.
    let error =
        import_key(Format::Raw, &raw(b"pw"), &Params::named("PBKDF2"), true, &usages(&["deriveBits"])).unwrap_err();
    assert_eq!(error.name, ErrorName::Syntax);
}

#[test]
fn ed25519_rfc8032_test_1() {
    let jwk = serde_json::json!({
        "kty": "OKP", "crv": "Ed25519",
        "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
        "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
    });
    let key = import_key(
        Format::Jwk,
        &KeyData::Jwk(Zeroizing::new(jwk.to_string())),
        &Params::named("Ed25519"),
        true,
        &usages(&["sign"]),
    )
    .unwrap();
    let signature = sign(&Params::named("Ed25519"), &key, b"").unwrap();
    assert_eq!(
        hex::encode(&signature),
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    );
    let public = import_key(
        Format::Raw,
        &raw(&h("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")),
        &Params::named("Ed25519"),
        true,
        &usages(&["verify"]),
    )
    .unwrap();
    assert!(verify(&Params::named("Ed25519"), &public, &signature, b"").unwrap());
    assert!(!verify(&Params::named("Ed25519"), &public, &signature, b"x").unwrap());
    // A JWK whose x does not match d is refused.
    let mut bad = jwk.clone();
    bad["x"] = serde_json::json!("A1qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
    let error = import_key(
        Format::Jwk,
        &KeyData::Jwk(Zeroizing::new(bad.to_string())),
        &Params::named("Ed25519"),
        true,
        &usages(&["sign"]),
    )
    .unwrap_err();
    assert_eq!(error.name, ErrorName::Data);
}

#[test]
fn aes_kw_rfc3394_4_1() {
    let kek = import_key(
        Format::Raw,
        &raw(&h("000102030405060708090A0B0C0D0E0F")),
        &Params::named("AES-KW"),
        false,
        &usages(&["wrapKey", "unwrapKey"]),
    )
    .unwrap();
    let key = import_key(
        Format::Raw,
        &raw(&h("00112233445566778899AABBCCDDEEFF")),
        &Params::named("AES-GCM"),
        true,
        &usages(&["encrypt"]),
    )
    .unwrap();
    let wrapped = wrap_key(Format::Raw, &key, &kek, &Params::named("AES-KW")).unwrap();
    assert_eq!(hex::encode_upper(&wrapped), "1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5");
    let unwrapped = unwrap_key(
        Format::Raw,
        &wrapped,
        &kek,
        &Params::named("AES-KW"),
        &Params::named("AES-GCM"),
        true,
        &usages(&["encrypt"]),
    )
    .unwrap();
    let phalanx_webcrypto::Exported::Bytes(bytes) = export_key(Format::Raw, &unwrapped).unwrap() else { panic!("raw") };
    assert_eq!(hex::encode_upper(&bytes[..]), "00112233445566778899AABBCCDDEEFF");
    let mut tampered = wrapped.clone();
    tampered[3] ^= 0x80;
    let error = unwrap_key(
        Format::Raw,
        &tampered,
        &kek,
        &Params::named("AES-KW"),
        &Params::named("AES-GCM"),
        true,
        &usages(&["encrypt"]),
    )
    .unwrap_err();
    assert_eq!(error.name, ErrorName::Operation);
}

#[test]
fn aes_gcm_nist_test_cases_2_and_4() {
    let key =
        import_key(Format::Raw, &raw(&[0; 16]), &Params::named("AES-GCM"), false, &usages(&["encrypt", "decrypt"]))
            .unwrap();
    let params = Params { iv: Some(vec![0; 12]), ..Params::named("AES-GCM") };
    let sealed = encrypt(&params, &key, &[0; 16]).unwrap();
    assert_eq!(hex::encode(&sealed), "0388dace60b6a392f328c2b971b2fe78ab6e47d42cec13bdf53a67b21257bddf");
    assert_eq!(decrypt(&params, &key, &sealed).unwrap(), vec![0; 16]);

    let key = import_key(
        Format::Raw,
        &raw(&h("feffe9928665731c6d6a8f9467308308")),
        &Params::named("AES-GCM"),
        false,
        &usages(&["encrypt", "decrypt"]),
    )
    .unwrap();
    let params = Params {
        iv: Some(h("cafebabefacedbaddecaf888")),
        additional_data: Some(h("feedfacedeadbeeffeedfacedeadbeefabaddad2")),
        ..Params::named("AES-GCM")
    };
    let plain = h(
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
    );
    let sealed = encrypt(&params, &key, &plain).unwrap();
    assert_eq!(
        hex::encode(&sealed),
        "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091\
         5bc94fbc3221a5db94fae95ae7121a47"
    );
    // Any changed byte, or other associated data, fails with OperationError.
    for at in [0, sealed.len() - 1] {
        let mut tampered = sealed.clone();
        tampered[at] ^= 1;
        assert_eq!(decrypt(&params, &key, &tampered).unwrap_err().name, ErrorName::Operation);
    }
    let other = Params { additional_data: Some(vec![1]), ..params.clone() };
    assert_eq!(decrypt(&other, &key, &sealed).unwrap_err().name, ErrorName::Operation);
    assert_eq!(decrypt(&params, &key, &sealed[..10]).unwrap_err().name, ErrorName::Operation);
}

#[test]
fn rejections_carry_the_spec_names() {
    let aes = Params::named("AES-GCM");
    // Wrong key length, wrong usage for the algorithm, empty usages.
    assert_eq!(
        import_key(Format::Raw, &raw(&[0; 15]), &aes, false, &usages(&["encrypt"])).unwrap_err().name,
        ErrorName::Data
    );
    assert_eq!(
        import_key(Format::Raw, &raw(&[0; 16]), &aes, false, &usages(&["sign"])).unwrap_err().name,
        ErrorName::Syntax
    );
    assert_eq!(
        import_key(Format::Raw, &raw(&[0; 16]), &aes, false, &UsageList::default()).unwrap_err().name,
        ErrorName::Syntax
    );
    // Unknown algorithm, unknown format, unknown usage.
    assert_eq!(
        import_key(Format::Raw, &raw(&[0; 16]), &Params::named("AES-XTS"), false, &usages(&["encrypt"]))
            .unwrap_err()
            .name,
        ErrorName::NotSupported
    );
    assert_eq!(Format::parse("der").unwrap_err().name, ErrorName::Type);
    assert_eq!(UsageList::parse(&["launch"]).unwrap_err().name, ErrorName::Type);
    // A key used for what it may not do, or with another algorithm.
    let key = import_key(Format::Raw, &raw(&[7; 32]), &aes, false, &usages(&["decrypt"])).unwrap();
    let params = Params { iv: Some(vec![0; 12]), ..aes.clone() };
    assert_eq!(encrypt(&params, &key, b"x").unwrap_err().name, ErrorName::InvalidAccess);
    let cbc = Params { iv: Some(vec![0; 16]), ..Params::named("AES-CBC") };
    assert_eq!(decrypt(&cbc, &key, &[0; 16]).unwrap_err().name, ErrorName::InvalidAccess);
    // A non-extractable key cannot be exported, in any format.
    assert_eq!(export_key(Format::Raw, &key).unwrap_err().name, ErrorName::InvalidAccess);
    assert_eq!(export_key(Format::Jwk, &key).unwrap_err().name, ErrorName::InvalidAccess);
    // Missing members are TypeErrors; bad iv lengths OperationErrors.
    let key = import_key(Format::Raw, &raw(&[7; 32]), &aes, false, &usages(&["encrypt"])).unwrap();
    assert_eq!(encrypt(&aes, &key, b"x").unwrap_err().name, ErrorName::Type);
    let cbc_key =
        import_key(Format::Raw, &raw(&[7; 16]), &Params::named("AES-CBC"), false, &usages(&["encrypt"])).unwrap();
    let short_iv = Params { iv: Some(vec![0; 8]), ..Params::named("AES-CBC") };
    assert_eq!(encrypt(&short_iv, &cbc_key, b"x").unwrap_err().name, ErrorName::Operation);
    // AES-KW does not encrypt.
    let kw = import_key(Format::Raw, &raw(&[7; 16]), &Params::named("AES-KW"), false, &usages(&["wrapKey"])).unwrap();
    assert_eq!(encrypt(&Params::named("AES-KW"), &kw, &[0; 16]).unwrap_err().name, ErrorName::NotSupported);
    // RSA moduli are bounded.
    let rsa = Params {
        modulus_length: Some(8192),
        public_exponent: Some(vec![1, 0, 1]),
        hash: Some("SHA-256".into()),
        ..Params::named("RSASSA-PKCS1-v1_5")
    };
    assert_eq!(generate_key(&rsa, false, &usages(&["sign"])).unwrap_err().name, ErrorName::Operation);
}

#[test]
fn generated_pairs_round_trip_through_every_format() {
    for (params, sign_usages) in [
        (Params { named_curve: Some("P-256".into()), ..Params::named("ECDSA") }, ["sign", "verify"]),
        (Params { named_curve: Some("P-384".into()), ..Params::named("ECDSA") }, ["sign", "verify"]),
        (Params::named("Ed25519"), ["sign", "verify"]),
    ] {
        let Generated::Pair { public, private } = generate_key(&params, true, &usages(&sign_usages)).unwrap() else {
            panic!("a pair")
        };
        assert_eq!(public.usage_names(), ["verify"]);
        assert!(public.usages().contains(Usages::VERIFY));
        assert_eq!(private.usage_names(), ["sign"]);
        let op = Params { hash: Some("SHA-384".into()), ..params.clone() };
        let signature = sign(&op, &private, b"hello").unwrap();
        for format in [Format::Spki, Format::Jwk, Format::Raw] {
            let exported = export_key(format, &public).unwrap();
            let data = match exported {
                phalanx_webcrypto::Exported::Bytes(b) => KeyData::Bytes(b),
                phalanx_webcrypto::Exported::Jwk(t) => KeyData::Jwk(t),
            };
            let again = import_key(format, &data, &params, true, &usages(&["verify"])).unwrap();
            assert!(verify(&op, &again, &signature, b"hello").unwrap(), "{format:?} of {}", params.name);
            assert!(!verify(&op, &again, &signature, b"hellp").unwrap());
        }
        for format in [Format::Pkcs8, Format::Jwk] {
            let exported = export_key(format, &private).unwrap();
            let data = match exported {
                phalanx_webcrypto::Exported::Bytes(b) => KeyData::Bytes(b),
                phalanx_webcrypto::Exported::Jwk(t) => KeyData::Jwk(t),
            };
            let again = import_key(format, &data, &params, false, &usages(&["sign"])).unwrap();
            let signature = sign(&op, &again, b"hello").unwrap();
            assert!(verify(&op, &public, &signature, b"hello").unwrap(), "{format:?} of {}", params.name);
        }
    }
}

#[test]
fn ecdh_and_x25519_agree() {
    for params in [Params { named_curve: Some("P-256".into()), ..Params::named("ECDH") }, Params::named("X25519")] {
        let pair = || match generate_key(&params, true, &usages(&["deriveBits"])).unwrap() {
            Generated::Pair { public, private } => (std::sync::Arc::new(public), private),
            Generated::Secret(_) => panic!("a pair"),
        };
        let ((a_public, a), (b_public, b)) = (pair(), pair());
        let with = |public| Params { public: Some(public), ..params.clone() };
        let ab = derive_bits(&with(b_public.clone()), &a, None).unwrap();
        let ba = derive_bits(&with(a_public), &b, None).unwrap();
        assert_eq!(ab, ba);
        assert_eq!(ab.len(), 32);
        assert_eq!(derive_bits(&with(b_public.clone()), &a, Some(12)).unwrap(), vec![ab[0], ab[1] & 0xf0]);
        assert_eq!(derive_bits(&with(b_public), &a, Some(512)).unwrap_err().name, ErrorName::Operation);
    }
}

#[test]
fn rsa_signatures_and_oaep() {
    let params = Params {
        modulus_length: Some(1024),
        public_exponent: Some(vec![1, 0, 1]),
        hash: Some("SHA-256".into()),
        ..Params::named("RSA-PSS")
    };
    let Generated::Pair { public, private } = generate_key(&params, true, &usages(&["sign", "verify"])).unwrap() else {
        panic!("a pair")
    };
    assert_eq!(public.algorithm().modulus_length, Some(1024));
    let op = Params { salt_length: Some(32), ..Params::named("RSA-PSS") };
    let signature = sign(&op, &private, b"m").unwrap();
    assert!(verify(&op, &public, &signature, b"m").unwrap());
    assert!(!verify(&op, &public, &signature, b"n").unwrap());
    // Through JWK and back.
    let phalanx_webcrypto::Exported::Jwk(jwk) = export_key(Format::Jwk, &private).unwrap() else { panic!("jwk") };
    assert!(jwk.contains("\"alg\":\"PS256\""));
    let again = import_key(Format::Jwk, &KeyData::Jwk(jwk), &params, false, &usages(&["sign"])).unwrap();
    assert!(verify(&op, &public, &sign(&op, &again, b"m").unwrap(), b"m").unwrap());

    let oaep = Params { name: "RSA-OAEP".into(), ..params.clone() };
    let Generated::Pair { public, private } = generate_key(&oaep, false, &usages(&["encrypt", "decrypt"])).unwrap()
    else {
        panic!("a pair")
    };
    let op = Params { label: Some(b"l".to_vec()), ..Params::named("RSA-OAEP") };
    let sealed = encrypt(&op, &public, b"secret").unwrap();
    assert_eq!(decrypt(&op, &private, &sealed).unwrap(), b"secret");
    let mut tampered = sealed.clone();
    tampered[5] ^= 1;
    assert_eq!(decrypt(&op, &private, &tampered).unwrap_err().name, ErrorName::Operation);
    let other_label = Params { label: None, ..op.clone() };
    assert_eq!(decrypt(&other_label, &private, &sealed).unwrap_err().name, ErrorName::Operation);
}
