fn main() {
    let wrapper = std::env::args().nth(1).unwrap();
    for (arch, args) in [
        ("x86_64", vec!["--target=x86_64-linux-gnu".to_string()]),
        ("aarch64", vec!["--target=aarch64-linux-gnu".to_string(), "-I/usr/aarch64-linux-gnu/include".to_string(), "-nostdinc".to_string()]),
    ] {
        bindgen::Builder::default()
            .header(&wrapper)
            .clang_args(args)
            .generate()
            .unwrap()
            .write_to_file(format!("v4l2_bindings_{arch}.rs"))
            .unwrap();
    }
}
