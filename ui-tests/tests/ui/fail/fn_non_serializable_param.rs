use remote_scope::remote_fn;

struct Image {
    pixels: Vec<u8>,
}

#[remote_fn]
async fn size(image: Image) -> usize {
    image.pixels.len()
}

fn main() {}
