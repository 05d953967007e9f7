use remote_scope::remote_fn;

struct Image {
    pixels: Vec<u8>,
}

#[remote_fn]
async fn blank(width: usize) -> Image {
    Image { pixels: vec![0; width] }
}

fn main() {}
