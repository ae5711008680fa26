#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| resnet_cifar_fuzz::checkpoint(data));
