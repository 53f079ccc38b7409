// The WebCrypto conformance module: run unchanged by Node (the reference)
// and by the sandbox (tests/webcrypto.rs), which compares the answers byte
// for byte. `conformance()` returns known-answer results for every
// deterministic operation, the error name of every rejection case, and
// signatures/ciphertexts made with fresh random keys for the other side to
// check (`crossCheck`).
const subtle = crypto.subtle;
const te = new TextEncoder();
const hex = (b) => Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, "0")).join("");
const unhex = (h) => Uint8Array.from(h.match(/../g) ?? [], (x) => parseInt(x, 16));
const rep = (byte, n) => new Uint8Array(n).fill(byte);

// Fixed keys (generated once by Node): RSA-2048, and two ECDH keys per curve.
const RSA_JWK = {"kty": "RSA", "n": "tcVjCKxuDidGptG-9xm1peGehxo9ANdPhFuu4RIjtyXln2dkgoacxRKFiRLpTqzS_Lc9Nk52PGZuwx68ZY286Eg70tnVD1rsD2E-aWCdA0_AMtiXbQjtVfegw0D38AZLrkxWWzkLTyIEBD4BJ6BVH9kuDxh5w9Hcs6QdfAb6eWe8fxq2NQik8hbbHmXbgrj90SsPjzJYrlBVy4yQELNhfL3hz3E-x4YcmPUKHP_LKwY7GYZXABBUwoPSMaGCCI3G5RyUtCcqJUTZt9aTOq5Ywc1XR6yDKGuhlCIKjjX38cdgkl6OAs955aEYJMvFVZ2r8ZPWaGdFbAbwy5D622kYnQ", "e": "AQAB", "d": "BDAhCWwKEhpa8tfzeUksKcZXwHS9ACJ88wBv4vl9GgGG4kejXpAuev-VcVR7E5ZH16Kz8l_JlhtlS_jAkaPfWVZk8VqkU1yMu4hQ9cfB07CtgwAsP-A8MhgP6fmI7OH1I9JmfxGfF0ciDWQxHAIltpxxv6St3GtXxxE_vlOr1YqaiFldDj4cxJYv2-VYqii2DcJO7K1eX6PKUZnQb3JvyfS51nObKcKdij8lHDhckkvbSptr7TpVqWJVEzTX6W2KcUwkyUyrZ8vYzpxK_36axKdV5Fp5Aspu2D9hLyf_eQuUIDmy4ZOnaJWqU-g0IZnd5SsOW1p64ucCHNnBMLtKuQ", "p": "7rKBpQ3_SBG1KZ9dEEC1JNqxQ5falvo8wQd_j8SMgBb-wV_UhxH2JCe6tEi0b0kpxW_MW3CcPjR15Kt4YtCaZAE03pbPhR_IT-lQhkdk9KHjbHG1sNBew6Z06qIwC86_RHBNyda5Wd48UURKITuOM4sygRmkuKRvH4c9A2WISlU", "q": "wvKAvqwew-_Zr0wIuPTDg3kLaz8PZG-4NNH32YSijD2pf5COBNR6zDrgv5ttlHtQ6ehHWqRaHZApGUhBPhEBzhN6s7yPxRRhy3Vutz3isfEhqh_awfK444788m6kLNPj7511czQNtQcfQvyKgdE5hX7h2XD_Nr6Au-VY3LozbSk", "dp": "bTfKcF6GN1C65w-fQoeJGxLh1z7NaxWW5O_sYzkY3Kco7AxQL3l9ea-gE0vNG7qLXWa5SAGvzBqu8vGuhPBUJHwU1-CDlbMkMcRc7wQN4o2MhRtGel_tbHJmvtF1UIHKLKOCRF92sfMpADpR_QDGITmI4197amz6159GwJ4djX0", "dq": "L8yP_rBrNrWnlVC6TsdM7P6P6zLiDklKTEEzWTUpOeOgnLOP7uU-WrcRBkoQ2zhFRaT7YeEsa1U-joFl5db7r1CdZFaWlccCl4VqqSlWXTT3gSQgWi-uX7Velf7E6Gzn1YexFZcsyTc-1gjf2Sa4yN-sdsk6-mxJWkjIug45r8k", "qi": "kzZgiHd0r1knfDCqknOOMvrs2izossEUNE4_55SVLbHduUiavh5_IcuLDCSnjpv7a-wK7WNmXB9BYzrw0cOpOTvmNLPFJf1rlfXCqgjOFVaYcSu_-V9GimMIKrd-fiU8WNn93k50ekWiF-SxwJPoF-DQDU90idjtV_WOirWYy2I"};
const EC_JWKS = {"P-256": [{"kty": "EC", "x": "SbvWHub0CDRDNLOs4LYVLnkMvReJHCPpNG5l7M-wUgo", "y": "NJ1VybN8BLenoXorgMQREDM2UAJ_GnHj5MFAJ72AOzg", "crv": "P-256", "d": "isRp1sKEH8NH1CMNQPQYUGF0R0xCTt0LNWQ0RccmrSo"}, {"kty": "EC", "x": "RAQVABEPK0X9UKJ4QyA7rVGNTs8763q4BQ7JtnyviYQ", "y": "Qu9dEcjDlo4BWOgCNVMs06JRCN2Rb2077AJi6cEKuJY", "crv": "P-256", "d": "7_IIrUHGDTP9VImZkMMoMoVPuVp5un1KYL1L7MT6jvI"}], "P-384": [{"kty": "EC", "x": "HvXqA6upR8vKTjwrU5j5HqTxegxA8abccsD44hPal51PtETyiOEcyUJhGMxxq5H4", "y": "42pTMM-bUYfzweyKqe8-mj_b-L_W8NPCZ80znsZBVLSQwLosyLgp3vEwzri_rsWF", "crv": "P-384", "d": "ENLTgMdaxkw6b-8zPoxJnlvI2hFTGNsV4e9qt3uv4WgYRPpqfrdWq44fwmiwSDSc"}, {"kty": "EC", "x": "kI4EZhUkGJ3s0R-AV28V0U3FRKsJ8jYAqjxunzww-0vmmSZSj4EFuORV-0lJUBid", "y": "Zb8NbCOe47lpakYCSKDa_8txx_lVyM8zqQR6axf2uFPQgWAIp77PjgMmJccHCKub", "crv": "P-384", "d": "Fhyv1rRYDAxmLwYQuAmnjhSa75hoQaW92TrRf3uabdrcLVgrsH2F_Tpbd-rpQk0W"}]};

async function conformance() {
  const results = {};
  const put = (name, value) => { results[name] = value instanceof ArrayBuffer ? hex(value) : value; };

  // digest
  for (const h of ["SHA-1", "SHA-256", "SHA-384", "SHA-512"]) {
    put(`digest/${h}/abc`, await subtle.digest(h, te.encode("abc")));
    put(`digest/${h}/empty`, await subtle.digest({ name: h }, new Uint8Array(0)));
    put(`digest/${h}/1000`, await subtle.digest(h, rep(0x61, 1000)));
  }

  // HMAC: RFC 4231 test cases 1, 2, 3, 6, 7 (SHA-256/384/512) and SHA-1.
  const hmacCases = [
    [rep(0x0b, 20), te.encode("Hi There")],
    [te.encode("Jefe"), te.encode("what do ya want for nothing?")],
    [rep(0xaa, 20), rep(0xdd, 50)],
    [rep(0xaa, 131), te.encode("Test Using Larger Than Block-Size Key - Hash Key First")],
    [rep(0xaa, 131), te.encode("This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.")],
  ];
  for (const hash of ["SHA-1", "SHA-256", "SHA-384", "SHA-512"]) {
    for (const [i, [key, data]] of hmacCases.entries()) {
      const k = await subtle.importKey("raw", key, { name: "HMAC", hash }, true, ["sign", "verify"]);
      const mac = await subtle.sign("HMAC", k, data);
      put(`hmac/${hash}/${i}`, mac);
      put(`hmac/${hash}/${i}/verify`, await subtle.verify("HMAC", k, mac, data));
      if (i === 1) {
        put(`hmac/${hash}/jwk`, await subtle.exportKey("jwk", k));
        put(`hmac/${hash}/algorithm`, k.algorithm);
        const again = await subtle.importKey("jwk", await subtle.exportKey("jwk", k), { name: "HMAC", hash }, false, ["verify"]);
        put(`hmac/${hash}/jwk-verify`, await subtle.verify("HMAC", again, mac, data));
      }
    }
  }
  const fullHmac = await subtle.importKey("raw", rep(0xff, 2), { name: "HMAC", hash: "SHA-256", length: 16 }, true, ["sign"]);
  put("hmac/length-16/algorithm", fullHmac.algorithm);

  // HKDF: RFC 5869 test cases 1 to 7.
  const hkdfCases = [
    ["SHA-256", rep(0x0b, 22), unhex("000102030405060708090a0b0c"), unhex("f0f1f2f3f4f5f6f7f8f9"), 42],
    ["SHA-256", Uint8Array.from({ length: 80 }, (_, i) => i), Uint8Array.from({ length: 80 }, (_, i) => 0x60 + i), Uint8Array.from({ length: 80 }, (_, i) => 0xb0 + i), 82],
    ["SHA-256", rep(0x0b, 22), new Uint8Array(0), new Uint8Array(0), 42],
    ["SHA-1", rep(0x0b, 11), unhex("000102030405060708090a0b0c"), unhex("f0f1f2f3f4f5f6f7f8f9"), 42],
    ["SHA-1", rep(0x0c, 22), new Uint8Array(0), new Uint8Array(0), 42],
    ["SHA-512", te.encode("input key material"), te.encode("salt"), te.encode("info"), 100],
  ];
  for (const [i, [hash, ikm, salt, info, length]] of hkdfCases.entries()) {
    const k = await subtle.importKey("raw", ikm, "HKDF", false, ["deriveBits", "deriveKey"]);
    put(`hkdf/${i}`, await subtle.deriveBits({ name: "HKDF", hash, salt, info }, k, length * 8));
  }

  // PBKDF2: RFC 6070 (SHA-1) and the same inputs with SHA-256 and SHA-512.
  const pbkdf2Cases = [
    [te.encode("password"), te.encode("salt"), 1, 20],
    [te.encode("password"), te.encode("salt"), 2, 20],
    [te.encode("password"), te.encode("salt"), 4096, 20],
    [te.encode("passwordPASSWORDpassword"), te.encode("saltSALTsaltSALTsaltSALTsaltSALTsalt"), 4096, 25],
    [te.encode("pass\0word"), te.encode("sa\0lt"), 4096, 16],
  ];
  for (const hash of ["SHA-1", "SHA-256", "SHA-512"]) {
    for (const [i, [password, salt, iterations, length]] of pbkdf2Cases.entries()) {
      const k = await subtle.importKey("raw", password, { name: "PBKDF2" }, false, ["deriveBits"]);
      put(`pbkdf2/${hash}/${i}`, await subtle.deriveBits({ name: "PBKDF2", hash, salt, iterations }, k, length * 8));
    }
  }

  // deriveKey: PBKDF2 to AES-GCM, HKDF to HMAC, ECDH to AES-KW.
  {
    const base = await subtle.importKey("raw", te.encode("password"), "PBKDF2", false, ["deriveKey"]);
    const aes = await subtle.deriveKey({ name: "PBKDF2", hash: "SHA-256", salt: te.encode("salt"), iterations: 1000 }, base, { name: "AES-GCM", length: 256 }, true, ["encrypt"]);
    put("deriveKey/pbkdf2-aes", await subtle.exportKey("raw", aes));
    put("deriveKey/pbkdf2-aes/algorithm", aes.algorithm);
    const ikm = await subtle.importKey("raw", rep(1, 32), "HKDF", false, ["deriveKey"]);
    const mac = await subtle.deriveKey({ name: "HKDF", hash: "SHA-384", salt: rep(2, 8), info: rep(3, 8) }, ikm, { name: "HMAC", hash: "SHA-256" }, true, ["sign"]);
    put("deriveKey/hkdf-hmac", await subtle.exportKey("jwk", mac));
  }

  // Ed25519: RFC 8032 section 7.1 tests 1 to 3.
  const edCases = [
    ["9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", ""],
    ["4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb", "72"],
    ["c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7", "af82"],
  ];
  for (const [i, [seed, message]] of edCases.entries()) {
    const pkcs8 = unhex("302e020100300506032b657004220420" + seed);
    const k = await subtle.importKey("pkcs8", pkcs8, "Ed25519", true, ["sign"]);
    const signature = await subtle.sign("Ed25519", k, unhex(message));
    put(`ed25519/${i}/signature`, signature);
    const jwk = await subtle.exportKey("jwk", k);
    put(`ed25519/${i}/jwk`, jwk);
    put(`ed25519/${i}/pkcs8`, await subtle.exportKey("pkcs8", k));
    const pub = await subtle.importKey("jwk", { kty: "OKP", crv: "Ed25519", x: jwk.x }, "Ed25519", true, ["verify"]);
    put(`ed25519/${i}/raw`, await subtle.exportKey("raw", pub));
    put(`ed25519/${i}/spki`, await subtle.exportKey("spki", pub));
    put(`ed25519/${i}/verify`, await subtle.verify("Ed25519", pub, signature, unhex(message)));
    put(`ed25519/${i}/verify-other`, await subtle.verify("Ed25519", pub, signature, te.encode("other")));
  }

  // X25519: RFC 7748 section 6.1.
  {
    const alice = await subtle.importKey("pkcs8", unhex("302e020100300506032b656e04220420" + "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"), "X25519", true, ["deriveBits"]);
    const bob = await subtle.importKey("raw", unhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"), "X25519", true, []);
    put("x25519/shared", await subtle.deriveBits({ name: "X25519", public: bob }, alice, 256));
    put("x25519/shared-128", await subtle.deriveBits({ name: "X25519", public: bob }, alice, 128));
    put("x25519/alice-jwk", await subtle.exportKey("jwk", alice));
    put("x25519/alice-pkcs8", await subtle.exportKey("pkcs8", alice));
    put("x25519/bob-spki", await subtle.exportKey("spki", bob));
  }

  // ECDH and ECDSA keys: import in every format, export in every format.
  for (const curve of ["P-256", "P-384"]) {
    const [a, b] = EC_JWKS[curve];
    const priv = await subtle.importKey("jwk", a, { name: "ECDH", namedCurve: curve }, true, ["deriveBits", "deriveKey"]);
    const pub = await subtle.importKey("jwk", { kty: "EC", crv: curve, x: b.x, y: b.y }, { name: "ECDH", namedCurve: curve }, true, []);
    put(`ecdh/${curve}/shared`, await subtle.deriveBits({ name: "ECDH", public: pub }, priv, null));
    put(`ecdh/${curve}/shared-64`, await subtle.deriveBits({ name: "ECDH", public: pub }, priv, 64));
    const kw = await subtle.deriveKey({ name: "ECDH", public: pub }, priv, { name: "AES-KW", length: 128 }, true, ["wrapKey"]);
    put(`ecdh/${curve}/derived-kw`, await subtle.exportKey("raw", kw));
    put(`ecdh/${curve}/pkcs8`, await subtle.exportKey("pkcs8", priv));
    put(`ecdh/${curve}/jwk`, await subtle.exportKey("jwk", priv));
    put(`ecdh/${curve}/spki`, await subtle.exportKey("spki", pub));
    put(`ecdh/${curve}/raw`, await subtle.exportKey("raw", pub));
    const fromSpki = await subtle.importKey("spki", await subtle.exportKey("spki", pub), { name: "ECDSA", namedCurve: curve }, true, ["verify"]);
    put(`ecdsa/${curve}/from-spki-jwk`, await subtle.exportKey("jwk", fromSpki));
    const fromPkcs8 = await subtle.importKey("pkcs8", await subtle.exportKey("pkcs8", priv), { name: "ECDSA", namedCurve: curve }, true, ["sign"]);
    put(`ecdsa/${curve}/from-pkcs8-jwk`, await subtle.exportKey("jwk", fromPkcs8));
    put(`ecdsa/${curve}/algorithm`, fromPkcs8.algorithm);
  }

  // RSA: the fixed key, as each algorithm. PKCS#1 v1.5 and PSS with salt 0 are deterministic.
  for (const hash of ["SHA-1", "SHA-256", "SHA-384", "SHA-512"]) {
    const priv = await subtle.importKey("jwk", RSA_JWK, { name: "RSASSA-PKCS1-v1_5", hash }, true, ["sign"]);
    put(`rsassa/${hash}/signature`, await subtle.sign("RSASSA-PKCS1-v1_5", priv, te.encode("message")));
    const pss = await subtle.importKey("jwk", RSA_JWK, { name: "RSA-PSS", hash }, true, ["sign"]);
    put(`rsa-pss/${hash}/salt-0`, await subtle.sign({ name: "RSA-PSS", saltLength: 0 }, pss, te.encode("message")));
    put(`rsassa/${hash}/jwk`, await subtle.exportKey("jwk", priv));
  }
  {
    const priv = await subtle.importKey("jwk", RSA_JWK, { name: "RSA-OAEP", hash: "SHA-256" }, true, ["decrypt"]);
    put("rsa/pkcs8", await subtle.exportKey("pkcs8", priv));
    put("rsa/algorithm", { ...priv.algorithm, publicExponent: hex(priv.algorithm.publicExponent) });
    const { d, p, q, dp, dq, qi, ...publicJwk } = RSA_JWK;
    const pub = await subtle.importKey("jwk", publicJwk, { name: "RSA-OAEP", hash: "SHA-256" }, true, ["encrypt"]);
    put("rsa/spki", await subtle.exportKey("spki", pub));
    const again = await subtle.importKey("pkcs8", await subtle.exportKey("pkcs8", priv), { name: "RSA-PSS", hash: "SHA-512" }, true, ["sign"]);
    put("rsa/pkcs8-jwk", await subtle.exportKey("jwk", again));
  }

  // AES-GCM: the GCM spec's test cases 2, 3 and 4; tag lengths; a 16-byte iv.
  {
    const k0 = await subtle.importKey("raw", new Uint8Array(16), "AES-GCM", true, ["encrypt", "decrypt"]);
    put("aes-gcm/2", await subtle.encrypt({ name: "AES-GCM", iv: new Uint8Array(12) }, k0, new Uint8Array(16)));
    const k = await subtle.importKey("raw", unhex("feffe9928665731c6d6a8f9467308308"), { name: "AES-GCM" }, true, ["encrypt", "decrypt"]);
    const iv = unhex("cafebabefacedbaddecaf888");
    const p3 = unhex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255");
    put("aes-gcm/3", await subtle.encrypt({ name: "AES-GCM", iv }, k, p3));
    const aad = unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
    const c4 = await subtle.encrypt({ name: "AES-GCM", iv, additionalData: aad }, k, p3.slice(0, 60));
    put("aes-gcm/4", c4);
    put("aes-gcm/4/decrypt", await subtle.decrypt({ name: "AES-GCM", iv, additionalData: aad }, k, c4));
    for (const tagLength of [96, 104, 112, 120, 128]) {
      const c = await subtle.encrypt({ name: "AES-GCM", iv, tagLength }, k, te.encode("tag length"));
      put(`aes-gcm/tag-${tagLength}`, c);
      put(`aes-gcm/tag-${tagLength}/decrypt`, await subtle.decrypt({ name: "AES-GCM", iv, tagLength }, k, c));
    }
    put("aes-gcm/iv-16", await subtle.encrypt({ name: "AES-GCM", iv: rep(9, 16) }, k, te.encode("sixteen")));
    const k256 = await subtle.importKey("raw", rep(0x42, 32), "AES-GCM", true, ["encrypt"]);
    put("aes-gcm/256/64KiB", await subtle.digest("SHA-256", await subtle.encrypt({ name: "AES-GCM", iv }, k256, rep(7, 65536))));
    put("aes-gcm/jwk", await subtle.exportKey("jwk", k256));
  }

  // AES-CBC: SP 800-38A F.2.1 (with the padding block WebCrypto adds) and 192/256-bit keys.
  {
    const plain = unhex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51");
    const iv = unhex("000102030405060708090a0b0c0d0e0f");
    for (const key of ["2b7e151628aed2a6abf7158809cf4f3c", "8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b", "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4"]) {
      const k = await subtle.importKey("raw", unhex(key), "AES-CBC", true, ["encrypt", "decrypt"]);
      const c = await subtle.encrypt({ name: "AES-CBC", iv }, k, plain);
      put(`aes-cbc/${key.length * 4}`, c);
      put(`aes-cbc/${key.length * 4}/decrypt`, await subtle.decrypt({ name: "AES-CBC", iv }, k, c));
      put(`aes-cbc/${key.length * 4}/empty`, await subtle.encrypt({ name: "AES-CBC", iv }, k, new Uint8Array(0)));
    }
  }

  // AES-CTR: SP 800-38A F.5.1, and short counters that wrap.
  {
    const k = await subtle.importKey("raw", unhex("2b7e151628aed2a6abf7158809cf4f3c"), "AES-CTR", true, ["encrypt", "decrypt"]);
    const counter = unhex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff");
    const plain = unhex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52ef");
    put("aes-ctr/128", await subtle.encrypt({ name: "AES-CTR", counter, length: 128 }, k, plain));
    put("aes-ctr/64", await subtle.encrypt({ name: "AES-CTR", counter, length: 64 }, k, plain));
    put("aes-ctr/8-wraps", await subtle.encrypt({ name: "AES-CTR", counter, length: 8 }, k, rep(1, 64)));
    put("aes-ctr/2-wraps", await subtle.encrypt({ name: "AES-CTR", counter: rep(0xff, 16), length: 2 }, k, rep(1, 60)));
    put("aes-ctr/decrypt", await subtle.decrypt({ name: "AES-CTR", counter, length: 32 }, k, plain));
  }

  // AES-KW: RFC 3394 section 4.1 to 4.6, and wrapKey/unwrapKey of every format.
  {
    const kek = (hexKey) => subtle.importKey("raw", unhex(hexKey), "AES-KW", true, ["wrapKey", "unwrapKey"]);
    const data = (hexKey) => subtle.importKey("raw", unhex(hexKey), "AES-GCM", true, ["encrypt"]);
    const cases = [
      ["000102030405060708090A0B0C0D0E0F", "00112233445566778899AABBCCDDEEFF"],
      ["000102030405060708090A0B0C0D0E0F1011121314151617", "00112233445566778899AABBCCDDEEFF"],
      ["000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F", "00112233445566778899AABBCCDDEEFF"],
      ["000102030405060708090A0B0C0D0E0F1011121314151617", "00112233445566778899AABBCCDDEEFF0001020304050607"],
      ["000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F", "00112233445566778899AABBCCDDEEFF0001020304050607"],
      ["000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F", "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F"],
    ];
    for (const [i, [kekHex, keyHex]] of cases.entries()) {
      const wrapped = await subtle.wrapKey("raw", await data(keyHex), await kek(kekHex), "AES-KW");
      put(`aes-kw/4.${i + 1}`, wrapped);
      const unwrapped = await subtle.unwrapKey("raw", wrapped, await kek(kekHex), "AES-KW", "AES-GCM", true, ["encrypt"]);
      put(`aes-kw/4.${i + 1}/unwrapped`, await subtle.exportKey("raw", unwrapped));
    }
    const gcm = await subtle.importKey("raw", rep(5, 32), "AES-GCM", true, ["wrapKey", "unwrapKey"]);
    const hmac = await subtle.importKey("raw", rep(6, 32), { name: "HMAC", hash: "SHA-256" }, true, ["sign"]);
    const wrappedJwk = await subtle.wrapKey("jwk", hmac, gcm, { name: "AES-GCM", iv: rep(1, 12) });
    put("wrap/jwk-aes-gcm", wrappedJwk);
    const back = await subtle.unwrapKey("jwk", wrappedJwk, gcm, { name: "AES-GCM", iv: rep(1, 12) }, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    put("wrap/jwk-aes-gcm/unwrapped", { type: back.type, extractable: back.extractable, algorithm: back.algorithm, usages: back.usages });
    put("wrap/jwk-aes-gcm/sign", await subtle.sign("HMAC", back, te.encode("x")));
    const ed = await subtle.importKey("pkcs8", unhex("302e020100300506032b657004220420" + edCases[0][0]), "Ed25519", true, ["sign"]);
    put("wrap/pkcs8-aes-kw", await subtle.wrapKey("pkcs8", ed, await kek(cases[2][0]), "AES-KW"));
  }

  // CryptoKey objects.
  {
    const k = await subtle.importKey("raw", rep(1, 16), "aes-gcm", false, ["decrypt", "encrypt", "encrypt"]);
    put("cryptokey/shape", { type: k.type, extractable: k.extractable, algorithm: k.algorithm, usages: k.usages, tag: Object.prototype.toString.call(k), json: JSON.stringify(k) });
  }

  // Rejections: the error name of each (or "resolved").
  const rejections = {};
  const attempt = async (name, f) => {
    try { await f(); rejections[name] = "resolved"; } catch (e) { rejections[name] = e?.name ?? String(e); }
  };
  const aes = await subtle.importKey("raw", rep(1, 16), "AES-GCM", false, ["encrypt"]);
  const aesDecrypt = await subtle.importKey("raw", rep(1, 16), "AES-GCM", false, ["decrypt"]);
  const cbc = await subtle.importKey("raw", rep(1, 16), "AES-CBC", false, ["decrypt", "encrypt"]);
  const mac = await subtle.importKey("raw", rep(1, 16), { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
  const pbkdf2 = await subtle.importKey("raw", rep(1, 16), "PBKDF2", false, ["deriveBits"]);
  const hkdf = await subtle.importKey("raw", rep(1, 16), "HKDF", false, ["deriveBits"]);
  const ed = await subtle.generateKey("Ed25519", false, ["sign", "verify"]);
  const ecdsa = await subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"]);
  const ecdh = await subtle.generateKey({ name: "ECDH", namedCurve: "P-256" }, true, ["deriveBits"]);
  const ecdh384 = await subtle.generateKey({ name: "ECDH", namedCurve: "P-384" }, true, ["deriveBits"]);
  const x = await subtle.generateKey("X25519", true, ["deriveBits"]);
  const kw = await subtle.importKey("raw", rep(1, 16), "AES-KW", false, ["wrapKey", "unwrapKey"]);
  const sealed = await subtle.encrypt({ name: "AES-GCM", iv: rep(0, 12) }, aes, te.encode("sealed"));
  const wrapped = await subtle.wrapKey("raw", await subtle.importKey("raw", rep(2, 16), "AES-GCM", true, ["encrypt"]), kw, "AES-KW");
  await attempt("import/aes-15-bytes", () => subtle.importKey("raw", rep(1, 15), "AES-GCM", false, ["encrypt"]));
  await attempt("import/aes-sign-usage", () => subtle.importKey("raw", rep(1, 16), "AES-GCM", false, ["sign"]));
  await attempt("import/aes-no-usages", () => subtle.importKey("raw", rep(1, 16), "AES-GCM", false, []));
  await attempt("import/unknown-algorithm", () => subtle.importKey("raw", rep(1, 16), "AES-XTS", false, ["encrypt"]));
  await attempt("import/unknown-format", () => subtle.importKey("der", rep(1, 16), "AES-GCM", false, ["encrypt"]));
  await attempt("import/unknown-usage", () => subtle.importKey("raw", rep(1, 16), "AES-GCM", false, ["launch"]));
  await attempt("import/rsa-raw", () => subtle.importKey("raw", rep(1, 16), { name: "RSA-PSS", hash: "SHA-256" }, false, ["verify"]));
  await attempt("import/pbkdf2-extractable", () => subtle.importKey("raw", rep(1, 16), "PBKDF2", true, ["deriveBits"]));
  await attempt("import/hmac-no-hash", () => subtle.importKey("raw", rep(1, 16), "HMAC", false, ["sign"]));
  await attempt("import/hmac-length-12", () => subtle.importKey("raw", rep(0xff, 2), { name: "HMAC", hash: "SHA-256", length: 12 }, true, ["sign"]));
  await attempt("import/hmac-empty", () => subtle.importKey("raw", new Uint8Array(0), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]));
  await attempt("import/jwk-kty", () => subtle.importKey("jwk", { kty: "EC", k: "AAAAAAAAAAAAAAAAAAAAAA" }, "AES-GCM", false, ["encrypt"]));
  await attempt("import/jwk-alg", () => subtle.importKey("jwk", { kty: "oct", k: "AAAAAAAAAAAAAAAAAAAAAA", alg: "A256GCM" }, "AES-GCM", false, ["encrypt"]));
  await attempt("import/jwk-key-ops", () => subtle.importKey("jwk", { kty: "oct", k: "AAAAAAAAAAAAAAAAAAAAAA", key_ops: ["decrypt"] }, "AES-GCM", false, ["encrypt"]));
  await attempt("import/jwk-ext", () => subtle.importKey("jwk", { kty: "oct", k: "AAAAAAAAAAAAAAAAAAAAAA", ext: false }, "AES-GCM", true, ["encrypt"]));
  await attempt("import/jwk-use", () => subtle.importKey("jwk", { kty: "oct", k: "AAAAAAAAAAAAAAAAAAAAAA", use: "sig" }, "AES-GCM", false, ["encrypt"]));
  await attempt("import/jwk-missing-k", () => subtle.importKey("jwk", { kty: "oct" }, "AES-GCM", false, ["encrypt"]));
  await attempt("import/ed25519-jwk-mismatch", async () => {
    const jwk = await subtle.exportKey("jwk", (await subtle.generateKey("Ed25519", true, ["sign"])).privateKey);
    jwk.x = (await subtle.exportKey("jwk", (await subtle.generateKey("Ed25519", true, ["sign"])).publicKey)).x;
    return subtle.importKey("jwk", jwk, "Ed25519", false, ["sign"]);
  });
  await attempt("import/ec-wrong-curve", async () => subtle.importKey("spki", await subtle.exportKey("spki", ecdh384.publicKey), { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]));
  await attempt("import/ec-bad-point", () => subtle.importKey("raw", rep(4, 65), { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]));
  await attempt("import/ec-unknown-curve", () => subtle.importKey("raw", rep(4, 65), { name: "ECDSA", namedCurve: "P-999" }, false, ["verify"]));
  await attempt("import/ed25519-public-sign", async () => subtle.importKey("raw", await subtle.exportKey("raw", ed.publicKey), "Ed25519", false, ["sign"]));
  await attempt("import/spki-garbage", () => subtle.importKey("spki", rep(0x30, 40), "Ed25519", false, ["verify"]));
  await attempt("encrypt/wrong-usage", () => subtle.encrypt({ name: "AES-GCM", iv: rep(0, 12) }, aesDecrypt, rep(0, 4)));
  await attempt("encrypt/wrong-algorithm", () => subtle.encrypt({ name: "AES-CBC", iv: rep(0, 16) }, aes, rep(0, 4)));
  await attempt("encrypt/hmac-key", () => subtle.encrypt({ name: "AES-GCM", iv: rep(0, 12) }, mac, rep(0, 4)));
  await attempt("encrypt/missing-iv", () => subtle.encrypt({ name: "AES-GCM" }, aes, rep(0, 4)));
  await attempt("encrypt/gcm-tag-100", () => subtle.encrypt({ name: "AES-GCM", iv: rep(0, 12), tagLength: 100 }, aes, rep(0, 4)));
  await attempt("encrypt/cbc-iv-8", () => subtle.encrypt({ name: "AES-CBC", iv: rep(0, 8) }, cbc, rep(0, 4)));
  await attempt("encrypt/ctr-length-0", async () => subtle.encrypt({ name: "AES-CTR", counter: rep(0, 16), length: 0 }, await subtle.importKey("raw", rep(1, 16), "AES-CTR", false, ["encrypt"]), rep(0, 4)));
  await attempt("encrypt/aes-kw", () => subtle.encrypt("AES-KW", kw, rep(0, 16)));
  await attempt("decrypt/gcm-tampered", async () => { const t = new Uint8Array(sealed); t[0] ^= 1; const k = await subtle.importKey("raw", rep(1, 16), "AES-GCM", false, ["decrypt"]); return subtle.decrypt({ name: "AES-GCM", iv: rep(0, 12) }, k, t); });
  await attempt("decrypt/gcm-too-short", () => subtle.decrypt({ name: "AES-GCM", iv: rep(0, 12) }, aesDecrypt, rep(0, 8)));
  await attempt("decrypt/cbc-bad-padding", () => subtle.decrypt({ name: "AES-CBC", iv: rep(0, 16) }, cbc, rep(0, 16)));
  await attempt("decrypt/cbc-partial-block", () => subtle.decrypt({ name: "AES-CBC", iv: rep(0, 16) }, cbc, rep(0, 15)));
  await attempt("sign/public-key", () => subtle.sign("Ed25519", ed.publicKey, rep(0, 4)));
  await attempt("sign/ecdsa-no-hash", () => subtle.sign("ECDSA", ecdsa.privateKey, rep(0, 4)));
  await attempt("sign/pss-no-salt", async () => subtle.sign("RSA-PSS", await subtle.importKey("jwk", RSA_JWK, { name: "RSA-PSS", hash: "SHA-256" }, false, ["sign"]), rep(0, 4)));
  await attempt("verify/short-signature", async () => { if (await subtle.verify("Ed25519", ed.publicKey, rep(0, 10), rep(0, 4))) throw new Error("verified"); });
  await attempt("verify/hmac-short", async () => { if (await subtle.verify("HMAC", mac, rep(0, 3), rep(0, 4))) throw new Error("verified"); });
  await attempt("verify/ecdsa-garbage", async () => { if (await subtle.verify({ name: "ECDSA", hash: "SHA-256" }, ecdsa.publicKey, rep(0xff, 64), rep(0, 4))) throw new Error("verified"); });
  await attempt("export/not-extractable", () => subtle.exportKey("raw", aes));
  await attempt("export/jwk-not-extractable", () => subtle.exportKey("jwk", ed.privateKey));
  await attempt("export/private-raw", () => subtle.exportKey("raw", ecdsa.privateKey));
  await attempt("export/public-pkcs8", () => subtle.exportKey("pkcs8", ecdsa.publicKey));
  await attempt("derive/hkdf-length-7", () => subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt: rep(0, 4), info: rep(0, 4) }, hkdf, 7));
  await attempt("derive/hkdf-null-length", () => subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt: rep(0, 4), info: rep(0, 4) }, hkdf, null));
  await attempt("derive/hkdf-too-long", () => subtle.deriveBits({ name: "HKDF", hash: "SHA-256", salt: rep(0, 4), info: rep(0, 4) }, hkdf, 255 * 256 + 8));
  await attempt("derive/hkdf-no-salt", () => subtle.deriveBits({ name: "HKDF", hash: "SHA-256", info: rep(0, 4) }, hkdf, 256));
  await attempt("derive/pbkdf2-0-iterations", () => subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt: rep(0, 4), iterations: 0 }, pbkdf2, 256));
  await attempt("derive/pbkdf2-length-12", () => subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt: rep(0, 4), iterations: 1 }, pbkdf2, 12));
  await attempt("derive/wrong-usage", () => subtle.deriveKey({ name: "PBKDF2", hash: "SHA-256", salt: rep(0, 4), iterations: 1 }, pbkdf2, { name: "AES-GCM", length: 128 }, false, ["encrypt"]));
  await attempt("derive/ecdh-ecdsa-public", () => subtle.deriveBits({ name: "ECDH", public: ecdsa.publicKey }, ecdh.privateKey, 256));
  await attempt("derive/ecdh-other-curve", () => subtle.deriveBits({ name: "ECDH", public: ecdh384.publicKey }, ecdh.privateKey, 256));
  await attempt("derive/ecdh-private-as-public", () => subtle.deriveBits({ name: "ECDH", public: ecdh.privateKey }, ecdh.privateKey, 256));
  await attempt("derive/ecdh-too-long", () => subtle.deriveBits({ name: "ECDH", public: ecdh.publicKey }, ecdh.privateKey, 264));
  await attempt("derive/x25519-small-order", async () => subtle.deriveBits({ name: "X25519", public: await subtle.importKey("raw", new Uint8Array(32), "X25519", false, []) }, x.privateKey, 256));
  await attempt("derive/aes-length-100", () => subtle.deriveKey({ name: "HKDF", hash: "SHA-256", salt: rep(0, 4), info: rep(0, 4) }, hkdf, { name: "AES-GCM", length: 100 }, false, ["encrypt"]));
  await attempt("generate/aes-length-100", () => subtle.generateKey({ name: "AES-GCM", length: 100 }, false, ["encrypt"]));
  await attempt("generate/hmac-encrypt", () => subtle.generateKey({ name: "HMAC", hash: "SHA-256" }, false, ["encrypt"]));
  await attempt("generate/ecdsa-no-usages", () => subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, []));
  await attempt("generate/ecdsa-verify-only", () => subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]));
  await attempt("generate/hkdf", () => subtle.generateKey("HKDF", false, ["deriveBits"]));
  await attempt("digest/sha-3", () => subtle.digest("SHA3-256", rep(0, 4)));
  await attempt("digest/not-buffer", () => subtle.digest("SHA-256", "text"));
  await attempt("wrap/not-extractable", () => subtle.wrapKey("raw", aes, kw, "AES-KW"));
  await attempt("wrap/wrong-usage", async () => subtle.wrapKey("raw", await subtle.importKey("raw", rep(2, 16), "AES-GCM", true, ["encrypt"]), aes, { name: "AES-GCM", iv: rep(0, 12) }));
  await attempt("unwrap/tampered", () => { const t = new Uint8Array(wrapped); t[5] ^= 1; return subtle.unwrapKey("raw", t, kw, "AES-KW", "AES-GCM", true, ["encrypt"]); });
  await attempt("unwrap/bad-usage-for-import", () => subtle.unwrapKey("raw", wrapped, kw, "AES-KW", "AES-GCM", true, ["sign"]));
  await attempt("cryptokey/construct", () => new CryptoKey());

  // Fresh random keys, for the other side to check.
  const crossCheck = [];
  for (const [curve, hash] of [["P-256", "SHA-256"], ["P-256", "SHA-512"], ["P-384", "SHA-384"]]) {
    const pair = await subtle.generateKey({ name: "ECDSA", namedCurve: curve }, true, ["sign", "verify"]);
    const data = te.encode(`ecdsa ${curve} ${hash}`);
    const signature = await subtle.sign({ name: "ECDSA", hash }, pair.privateKey, data);
    if (!(await subtle.verify({ name: "ECDSA", hash }, pair.publicKey, signature, data))) throw new Error(`ECDSA ${curve} did not verify`);
    crossCheck.push({ kind: "ecdsa", curve, hash, spki: hex(await subtle.exportKey("spki", pair.publicKey)), pkcs8: hex(await subtle.exportKey("pkcs8", pair.privateKey)), data: hex(data), signature: hex(signature) });
  }
  {
    const pair = await subtle.generateKey("Ed25519", true, ["sign", "verify"]);
    const data = te.encode("ed25519");
    crossCheck.push({ kind: "ed25519", jwk: await subtle.exportKey("jwk", pair.publicKey), data: hex(data), signature: hex(await subtle.sign("Ed25519", pair.privateKey, data)) });
  }
  {
    const pss = await subtle.importKey("jwk", RSA_JWK, { name: "RSA-PSS", hash: "SHA-256" }, false, ["sign"]);
    const data = te.encode("rsa-pss");
    crossCheck.push({ kind: "rsa-pss", data: hex(data), signature: hex(await subtle.sign({ name: "RSA-PSS", saltLength: 32 }, pss, data)) });
    const { d, p, q, dp, dq, qi, ...publicJwk } = RSA_JWK;
    const oaep = await subtle.importKey("jwk", publicJwk, { name: "RSA-OAEP", hash: "SHA-256" }, false, ["encrypt"]);
    crossCheck.push({ kind: "rsa-oaep", plain: hex(te.encode("oaep")), sealed: hex(await subtle.encrypt({ name: "RSA-OAEP", label: te.encode("label") }, oaep, te.encode("oaep"))) });
  }
  {
    const aesKey = await subtle.generateKey({ name: "AES-GCM", length: 256 }, true, ["encrypt"]);
    const iv = crypto.getRandomValues(new Uint8Array(12));
    crossCheck.push({ kind: "aes-gcm", key: hex(await subtle.exportKey("raw", aesKey)), iv: hex(iv), sealed: hex(await subtle.encrypt({ name: "AES-GCM", iv }, aesKey, te.encode("gcm"))) });
    const rsa = await subtle.generateKey({ name: "RSASSA-PKCS1-v1_5", modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" }, true, ["sign", "verify"]);
    const data = te.encode("generated rsa");
    crossCheck.push({ kind: "rsassa", jwk: await subtle.exportKey("jwk", rsa.publicKey), data: hex(data), signature: hex(await subtle.sign("RSASSA-PKCS1-v1_5", rsa.privateKey, data)) });
  }
  return { results, rejections, crossCheck };
}

// Checks the other side's `crossCheck` items: one boolean each.
async function crossVerify(items) {
  const out = [];
  for (const item of items) {
    if (item.kind === "ecdsa") {
      const pub = await subtle.importKey("spki", unhex(item.spki), { name: "ECDSA", namedCurve: item.curve }, false, ["verify"]);
      const priv = await subtle.importKey("pkcs8", unhex(item.pkcs8), { name: "ECDSA", namedCurve: item.curve }, false, ["sign"]);
      const again = await subtle.sign({ name: "ECDSA", hash: item.hash }, priv, unhex(item.data));
      out.push(await subtle.verify({ name: "ECDSA", hash: item.hash }, pub, unhex(item.signature), unhex(item.data))
        && await subtle.verify({ name: "ECDSA", hash: item.hash }, pub, again, unhex(item.data)));
    } else if (item.kind === "ed25519") {
      const pub = await subtle.importKey("jwk", item.jwk, "Ed25519", false, ["verify"]);
      out.push(await subtle.verify("Ed25519", pub, unhex(item.signature), unhex(item.data)));
    } else if (item.kind === "rsa-pss") {
      const { d, p, q, dp, dq, qi, ...publicJwk } = RSA_JWK;
      const pub = await subtle.importKey("jwk", publicJwk, { name: "RSA-PSS", hash: "SHA-256" }, false, ["verify"]);
      out.push(await subtle.verify({ name: "RSA-PSS", saltLength: 32 }, pub, unhex(item.signature), unhex(item.data)));
    } else if (item.kind === "rsa-oaep") {
      const priv = await subtle.importKey("jwk", RSA_JWK, { name: "RSA-OAEP", hash: "SHA-256" }, false, ["decrypt"]);
      out.push(hex(await subtle.decrypt({ name: "RSA-OAEP", label: te.encode("label") }, priv, unhex(item.sealed))) === item.plain);
    } else if (item.kind === "aes-gcm") {
      const key = await subtle.importKey("raw", unhex(item.key), "AES-GCM", false, ["decrypt"]);
      out.push(new TextDecoder().decode(await subtle.decrypt({ name: "AES-GCM", iv: unhex(item.iv) }, key, unhex(item.sealed))) === "gcm");
    } else if (item.kind === "rsassa") {
      const pub = await subtle.importKey("jwk", item.jwk, { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, false, ["verify"]);
      out.push(await subtle.verify("RSASSA-PKCS1-v1_5", pub, unhex(item.signature), unhex(item.data)));
    } else out.push(false);
  }
  return out;
}
